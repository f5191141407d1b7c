"""Image quality metrics shared by tests, benchmarks and evaluation."""

from __future__ import annotations

import numpy as np


def psnr(target: np.ndarray, prediction: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB; the range defaults to max - min of the target."""
    target = np.asarray(target, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if target.shape != prediction.shape:
        raise ValueError(f"shapes differ: {target.shape} vs {prediction.shape}")
    if data_range is None:
        data_range = float(target.max() - target.min())
    mse = float(np.mean((target - prediction) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * np.log10(data_range**2 / mse)


def affine_fit(target: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """a * prediction + b with (a, b) minimising the squared error to the target."""
    target = np.asarray(target, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    centred = prediction - prediction.mean()
    denominator = float(np.sum(centred**2))
    scale = float(np.sum(centred * (target - target.mean()))) / denominator if denominator else 0.0
    return scale * centred + target.mean()


def range_invariant_psnr(target: np.ndarray, prediction: np.ndarray) -> float:
    """PSNR after the best affine rescaling of the prediction (the paper's distortion metric).

    It does not penalise a global offset or gain, so images in different intensity units (a
    widefield input and a confocal target, say) can be compared fairly.
    """
    return psnr(target, affine_fit(target, prediction))


def seam_ratio(image: np.ndarray, rows: list[int], cols: list[int]) -> float:
    """Mean |gradient| across the given borders over the mean |gradient| everywhere else.

    A border at row r lies between rows r - 1 and r (likewise for columns). Around 1 means the
    borders are invisible; tiles pasted together without blending give clearly more. Several
    2D images (an array with leading axes) are pooled.
    """
    image = np.asarray(image, dtype=np.float64)
    height, width = image.shape[-2:]
    dy = np.abs(np.diff(image, axis=-2))
    dx = np.abs(np.diff(image, axis=-1))
    across_rows = np.zeros(height - 1, dtype=bool)
    across_rows[[r - 1 for r in rows if 0 < r < height]] = True
    across_cols = np.zeros(width - 1, dtype=bool)
    across_cols[[c - 1 for c in cols if 0 < c < width]] = True
    if not (across_rows.any() or across_cols.any()):
        raise ValueError("no border lies inside the image")
    across = np.concatenate([dy[..., across_rows, :].ravel(), dx[..., across_cols].ravel()])
    other = np.concatenate([dy[..., ~across_rows, :].ravel(), dx[..., ~across_cols].ravel()])
    return float(across.mean() / other.mean())
