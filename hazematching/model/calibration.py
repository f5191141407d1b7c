"""Uncertainty calibration: does the predicted spread match the actual error?

Pixels are binned by their predicted standard deviation. In every bin the root mean variance
(RMV, the spread the model predicts) is compared with the root mean squared error of the MMSE
against the target (RMSE, the spread that happens). A calibrated model has RMSE = RMV in every
bin. The fit is the affine map std' = scale * std + offset that brings the RMV of every bin closest
to its RMSE (least squares weighted by pixel count), as in the paper's Sec. 3.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from ..config import StrictModel


@dataclass(frozen=True)
class CalibrationBins:
    """Per-bin statistics, bins ordered by predicted std (arrays of equal length)."""

    rmv: np.ndarray
    rmse: np.ndarray
    rmse_stderr: np.ndarray
    counts: np.ndarray


class Calibration(StrictModel):
    """Scale and offset of the std, and how well they fit the data they were fitted on."""

    std_scale: float = Field(gt=0)
    std_offset: float = 0.0
    error_before: float = Field(ge=0, description="expected normalised calibration error, raw std")
    error_after: float = Field(ge=0, description="the same after scale and offset")
    pixels: int = Field(ge=1)
    bins: int = Field(ge=2)
    source: str = Field("", description="what it was fitted on (data folder, images, sampling)")
    samples: int | None = Field(None, ge=1, description="posterior samples it was fitted at")
    steps: int | None = Field(None, ge=1, description="Euler steps it was fitted at")

    def mismatch(self, samples: int, steps: int) -> str | None:
        """Why this calibration may not hold for the std of `samples` x `steps`, or None.

        The spread of K samples depends on K and on the step count, so a scale fitted at one
        setting over- or under-corrects at another.
        """
        fitted = (self.samples, self.steps)
        if None in fitted or fitted == (samples, steps):
            return None
        return (
            f"the std calibration was fitted at {self.samples} samples x {self.steps} steps; "
            f"at {samples} x {steps} it may not hold (calibrate again with these settings)"
        )


def bin_by_std(std: np.ndarray, error: np.ndarray, bins: int) -> CalibrationBins:
    """Bin pixels into `bins` groups of equal count by predicted std.

    `std` is the predicted standard deviation, `error` the MMSE minus the target, any shape.
    Equal-count bins keep every bin's estimate equally reliable. The standard error of each
    bin's RMSE follows from that of its mean squared error by the delta method.
    """
    std = np.asarray(std, dtype=np.float64).ravel()
    error = np.asarray(error, dtype=np.float64).ravel()
    if std.shape != error.shape:
        raise ValueError(f"std and error differ in size: {std.size} vs {error.size}")
    if bins < 2 or std.size < 2 * bins:
        raise ValueError(f"{std.size} pixels are too few for {bins} bins")
    order = np.argsort(std, kind="stable")
    groups = np.array_split(order, bins)
    rmv, rmse, stderr, counts = [], [], [], []
    for group in groups:
        squared = error[group] ** 2
        mse = squared.mean()
        rmv.append(np.sqrt(np.mean(std[group] ** 2)))
        rmse.append(np.sqrt(mse))
        mse_stderr = squared.std(ddof=1) / np.sqrt(len(group))
        stderr.append(mse_stderr / (2 * np.sqrt(mse)) if mse > 0 else 0.0)
        counts.append(len(group))
    return CalibrationBins(np.array(rmv), np.array(rmse), np.array(stderr), np.array(counts))


def fit_scale_offset(bins: CalibrationBins) -> tuple[float, float]:
    """(scale, offset) minimising sum_b n_b ((scale * RMV_b + offset - RMSE_b) / RMSE_b)^2.

    Relative residuals, because calibration is judged by the relative error of every bin (see
    `calibration_error`): an absolute fit is dominated by the few bins of large error and can
    leave the many low-error pixels several times off. A non-positive scale or a negative
    offset (which would make small predicted stds negative) falls back to the pure scale fit
    through the origin, which is always positive.
    """
    rmse = np.maximum(bins.rmse, np.finfo(np.float64).tiny)
    weights = bins.counts.astype(np.float64) / rmse**2
    design = np.stack([bins.rmv, np.ones_like(bins.rmv)], axis=1) * np.sqrt(weights)[:, None]
    (scale, offset), *_ = np.linalg.lstsq(design, bins.rmse * np.sqrt(weights), rcond=None)
    if scale <= 0 or offset < 0:
        scale = float(np.sum(weights * bins.rmv * bins.rmse) / np.sum(weights * bins.rmv**2))
        offset = 0.0
    return float(scale), float(offset)


def calibration_error(bins: CalibrationBins) -> float:
    """Expected normalised calibration error: count-weighted mean of |RMV - RMSE| / RMSE."""
    relative = np.abs(bins.rmv - bins.rmse) / np.maximum(bins.rmse, np.finfo(np.float64).tiny)
    return float(np.average(relative, weights=bins.counts))


def calibrate_arrays(
    std: np.ndarray, error: np.ndarray, bins: int = 20, source: str = ""
) -> tuple[Calibration, CalibrationBins, CalibrationBins]:
    """Fit a calibration to predicted std and actual error; also the bins before and after."""
    raw = bin_by_std(std, error, bins)
    scale, offset = fit_scale_offset(raw)
    # a positive scale keeps the order of pixels, so the calibrated bins hold the same pixels
    calibrated = bin_by_std(scale * np.asarray(std) + offset, error, bins)
    calibration = Calibration(
        std_scale=scale,
        std_offset=offset,
        error_before=calibration_error(raw),
        error_after=calibration_error(calibrated),
        pixels=int(np.asarray(std).size),
        bins=bins,
        source=source,
    )
    return calibration, raw, calibrated
