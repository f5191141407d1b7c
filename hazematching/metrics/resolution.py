"""Fourier ring correlation (FRC): the resolution at which a prediction agrees with its target.

FRC(r) = Re sum_ring F1 conj(F2) / sqrt(sum_ring |F1|^2 sum_ring |F2|^2) over rings of equal
spatial frequency. The resolution is the inverse of the first frequency at which the curve falls
below a threshold: 1/7 (the common fixed threshold) or 0.5 (stricter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THRESHOLDS = (1 / 7, 0.5)


@dataclass(frozen=True)
class FourierRingCorrelation:
    """FRC per ring; `frequency` in cycles per pixel (0 to 0.5)."""

    frequency: np.ndarray
    correlation: np.ndarray

    def resolution(self, threshold: float) -> float:
        """Resolution in pixels (1 / frequency) where FRC first drops below `threshold`.

        Returns 2.0 (the Nyquist limit) when it never does.
        """
        below = np.nonzero(self.correlation < threshold)[0]
        below = below[below > 0]  # the zero-frequency ring only measures the mean
        if below.size == 0:
            return 2.0
        return float(1.0 / self.frequency[below[0]])


def _hann(shape: tuple[int, int]) -> np.ndarray:
    """2D Hann window: removes the edge discontinuity that would add a cross in the spectrum."""
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1]))


def fourier_ring_correlation(first: np.ndarray, second: np.ndarray) -> FourierRingCorrelation:
    """FRC of two 2D images of equal shape (non-square images use their common frequencies)."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"FRC needs two 2D images of equal shape, got {a.shape} and {b.shape}")
    window = _hann(a.shape)
    # subtracting the window-weighted mean leaves no DC for the window to leak into low rings
    fa = np.fft.fft2((a - np.average(a, weights=window)) * window)
    fb = np.fft.fft2((b - np.average(b, weights=window)) * window)
    fy = np.fft.fftfreq(a.shape[0])[:, None]
    fx = np.fft.fftfreq(a.shape[1])[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    step = 1.0 / min(a.shape)  # ring width: one frequency sample of the shorter side
    rings = np.round(radius / step).astype(int)
    count = min(a.shape) // 2 + 1
    keep = rings < count
    cross = np.bincount(rings[keep], (fa * np.conj(fb)).real[keep], count)
    power_a = np.bincount(rings[keep], (np.abs(fa) ** 2)[keep], count)
    power_b = np.bincount(rings[keep], (np.abs(fb) ** 2)[keep], count)
    denominator = np.sqrt(power_a * power_b)
    correlation = np.divide(cross, denominator, out=np.zeros_like(cross), where=denominator > 0)
    return FourierRingCorrelation(np.arange(count) * step, correlation)
