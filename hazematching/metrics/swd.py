"""Sliced Wasserstein distance of Laplacian-pyramid patches: a weight-free FID.

GMSD and FSIM compare a sample with its target pixel by pixel, so they reward the conditional
mean as much as a realistic sample; FID compares the *distributions* of two image sets, but needs
pretrained Inception weights. The sliced Wasserstein distance (SWD) of Karras et al. (2018,
"Progressive growing of GANs", section 5) is the weight-free alternative: every image is split
into a Laplacian pyramid (one band per octave, the coarsest a Gaussian residual), 7 x 7
neighbourhoods are drawn at random positions of every band, and for each band the distribution
of these descriptors in the predictions is compared with that in the targets by the mean
1D Wasserstein distance along random unit directions.

Each set's descriptors are standardised per band by their own mean and standard deviation (as in
the original), so a global gain or offset costs nothing; what counts is whether local structure
at each scale looks like the targets'. Positions and directions come from one seeded generator,
so a set compared with itself gives exactly 0 and the value is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

NEIGHBOURHOOD = 7
SMALLEST_BAND = 16  # no band smaller than this many pixels per side
MAX_BANDS = 4
_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


@dataclass(frozen=True)
class SwdSettings:
    """How many descriptors and directions; recorded with every result."""

    per_image: int = 128  # descriptors drawn per image and band
    directions: int = 512
    seed: int = 0


def _blur(image: np.ndarray) -> np.ndarray:
    """Separable 5-tap binomial filter (the classic pyramid kernel), mirrored at borders.

    Mirroring about the edge pixels keeps the zero-inserted grid of `_expand` regular, so a
    constant image has no band-pass content even at the borders.
    """
    image = ndimage.correlate1d(image, _BINOMIAL, axis=0, mode="mirror")
    return ndimage.correlate1d(image, _BINOMIAL, axis=1, mode="mirror")


def _expand(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Upsample by two (zero insertion, then the binomial filter with gain four)."""
    up = np.zeros(shape)
    up[::2, ::2] = image
    return 4.0 * _blur(up)


def band_count(shape: tuple[int, int]) -> int:
    """Octave bands that keep the smallest band at least SMALLEST_BAND pixels (1 to MAX_BANDS)."""
    side = min(shape)
    bands = 1
    while bands < MAX_BANDS and side // 2**bands >= SMALLEST_BAND:
        bands += 1
    return bands


def laplacian_pyramid(image: np.ndarray, bands: int) -> list[np.ndarray]:
    """`bands - 1` band-pass images, finest first, then the Gaussian residual."""
    current = np.asarray(image, dtype=np.float64)
    pyramid = []
    for _ in range(bands - 1):
        small = _blur(current)[::2, ::2]
        pyramid.append(current - _expand(small, current.shape))
        current = small
    pyramid.append(current)
    return pyramid


def _descriptors(band: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The 7 x 7 neighbourhoods whose top-left corners are (rows, cols), flattened."""
    offsets = np.arange(NEIGHBOURHOOD)
    r = rows[:, None, None] + offsets[None, :, None]
    c = cols[:, None, None] + offsets[None, None, :]
    return band[r, c].reshape(len(rows), -1)


def _standardise(descriptors: np.ndarray) -> np.ndarray:
    std = descriptors.std()
    return (descriptors - descriptors.mean()) / (std if std > 0 else 1.0)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, directions: np.ndarray) -> float:
    """Mean over unit `directions` (D x n) of the 1D Wasserstein-1 distance of two equal-size
    point sets (N x D) projected onto them."""
    if a.shape != b.shape:
        raise ValueError(f"point sets of different shapes {a.shape} and {b.shape}")
    projected_a = np.sort(a @ directions, axis=0)
    projected_b = np.sort(b @ directions, axis=0)
    return float(np.mean(np.abs(projected_a - projected_b)))


def swd(
    targets: list[np.ndarray], predictions: list[np.ndarray], settings: SwdSettings = SwdSettings()
) -> dict[str, float]:
    """SWD of each pyramid band between two image sets, and their mean (key "mean").

    `predictions[i]` must have the shape of `targets[i]`; both are sampled at the same positions.
    Images should be in a common unit (see `similarity.percentile_normalize`).
    """
    if not targets or len(targets) != len(predictions):
        raise ValueError("SWD needs two non-empty image sets of the same length")
    shapes = {np.shape(t) for t in targets} | {np.shape(p) for p in predictions}
    if any(len(s) != 2 or min(s) < NEIGHBOURHOOD for s in shapes):
        raise ValueError(f"SWD needs 2D images of at least {NEIGHBOURHOOD} px, got {shapes}")
    for t, p in zip(targets, predictions, strict=True):
        if np.shape(t) != np.shape(p):
            raise ValueError(f"target {np.shape(t)} and prediction {np.shape(p)} differ in shape")
    bands = min(band_count(np.shape(t)) for t in targets)
    rng = np.random.default_rng(settings.seed)
    target_sets: list[list[np.ndarray]] = [[] for _ in range(bands)]
    prediction_sets: list[list[np.ndarray]] = [[] for _ in range(bands)]
    for target, prediction in zip(targets, predictions, strict=True):
        pyramids = laplacian_pyramid(target, bands), laplacian_pyramid(prediction, bands)
        for level, (t_band, p_band) in enumerate(zip(*pyramids, strict=True)):
            rows = rng.integers(0, t_band.shape[0] - NEIGHBOURHOOD + 1, settings.per_image)
            cols = rng.integers(0, t_band.shape[1] - NEIGHBOURHOOD + 1, settings.per_image)
            target_sets[level].append(_descriptors(t_band, rows, cols))
            prediction_sets[level].append(_descriptors(p_band, rows, cols))
    directions = rng.normal(size=(NEIGHBOURHOOD**2, settings.directions))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    result = {
        f"band_{level}": sliced_wasserstein(
            _standardise(np.concatenate(target_sets[level])),
            _standardise(np.concatenate(prediction_sets[level])),
            directions,
        )
        for level in range(bands)
    }
    result["mean"] = float(np.mean(list(result.values())))
    return result
