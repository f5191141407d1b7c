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
