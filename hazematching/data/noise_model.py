"""A Poisson-Gaussian noise model fitted to real images: variance = gain * signal + offset.

Camera images of photon-limited fluorescence have a noise variance that grows linearly with the
expected intensity (shot noise scaled by the gain) on top of a constant (read noise). Both are
estimated from the images themselves, without clean references: a high-pass residual measures
the local noise, a local mean the signal, and a line through (mean, variance) of
intensity bins gives the two numbers. Widefield images are smooth, so their high-pass residual
is nearly all noise.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from ..config import StrictModel
from ..errors import HazeMatchingError

_BINS = 16
# the residual x - mean3x3(x) of white noise of variance s^2 has variance s^2 * (1 - 1/9)
_RESIDUAL_FACTOR = 8.0 / 9.0


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, mirror-padded (via cumulative sums, any image size)."""
    padded = np.pad(image.astype(np.float64), radius, mode="reflect")
    c = np.cumsum(np.cumsum(padded, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    k = 2 * radius + 1
    h, w = image.shape
    total = c[k : k + h, k : k + w] - c[:h, k : k + w] - c[k : k + h, :w] + c[:h, :w]
    return total / k**2


class NoiseModel(StrictModel):
    """Noise of variance gain * max(signal, 0) + offset, in image intensity units."""

    gain: float = Field(ge=0, description="variance per unit of signal (shot noise)")
    offset: float = Field(
        description="signal-independent variance (read noise squared; negative when the camera "
        "adds a baseline, which the variance line then starts below)"
    )

    @classmethod
    def fit(cls, images: Sequence[np.ndarray]) -> NoiseModel:
        """Estimate gain and offset from noisy images of smooth content.

        Pixels are binned by their local mean (7 x 7) into intensity quantiles; in each bin the
        noise variance is the squared robust spread (1.4826 MAD) of the 3 x 3 high-pass residual;
        a least-squares line through the bins gives gain (clipped at 0) and offset.
        """
        means, residuals = [], []
        for image in images:
            if min(image.shape) < 8:
                raise HazeMatchingError(f"image of shape {image.shape} is too small to fit noise")
            means.append(_box(image, 3).ravel())
            residuals.append((image - _box(image, 1)).ravel())
        mean, residual = np.concatenate(means), np.concatenate(residuals)
        edges = np.quantile(mean, np.linspace(0, 1, _BINS + 1))
        signal, variance = [], []
        for low, high in itertools.pairwise(edges):
            inside = (mean >= low) & ((mean < high) if high < edges[-1] else (mean <= high))
            if inside.sum() < 100:
                continue
            r = residual[inside]
            spread = 1.4826 * np.median(np.abs(r - np.median(r)))
            signal.append(float(mean[inside].mean()))
            variance.append(spread**2 / _RESIDUAL_FACTOR)
        if len(signal) < 2:
            raise HazeMatchingError("too few distinct intensities to fit a noise model")
        slope, intercept = np.polyfit(signal, variance, 1)
        return cls(gain=max(float(slope), 0.0), offset=float(intercept))

    def sample(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`clean` plus Gaussian noise of the model's variance, clipped at 0 (float32)."""
        std = np.sqrt(np.clip(self.gain * np.clip(clean, 0, None) + self.offset, 0, None))
        return (clean + std * rng.standard_normal(clean.shape)).astype(np.float32)
