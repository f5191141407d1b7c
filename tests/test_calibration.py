"""Calibration fit against synthetic errors whose true spread is known."""

from __future__ import annotations

import numpy as np
import pytest

from hazematching.model.calibration import (
    CalibrationBins,
    bin_by_std,
    calibrate_arrays,
    calibration_error,
    fit_scale_offset,
)


def _synthetic(scale: float, offset: float, n: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """Predicted std uniform in [0.5, 3]; errors drawn with true spread scale * std + offset."""
    rng = np.random.default_rng(0)
    std = rng.uniform(0.5, 3.0, n)
    return std, rng.normal(0.0, scale * std + offset)


def test_fit_recovers_known_scale_and_offset() -> None:
    std, error = _synthetic(scale=1.7, offset=0.4)
    calibration, before, after = calibrate_arrays(std, error, bins=25)
    assert calibration.std_scale == pytest.approx(1.7, rel=0.03)
    assert calibration.std_offset == pytest.approx(0.4, abs=0.05)
    assert calibration.error_before > 0.3  # raw std is 1.7x too small plus an offset
    assert calibration.error_after < 0.02
    assert calibration.error_after == pytest.approx(calibration_error(after))
    np.testing.assert_array_equal(before.rmse, after.rmse)  # same pixels in every bin


def test_calibrated_std_has_unit_fit_and_small_error() -> None:
    std, error = _synthetic(scale=1.0, offset=0.0)
    calibration, *_ = calibrate_arrays(std, error, bins=20)
    assert calibration.std_scale == pytest.approx(1.0, rel=0.03)
    assert calibration.error_before < 0.02


def _bins(rmv: list[float], rmse: list[float]) -> CalibrationBins:
    n = len(rmv)
    return CalibrationBins(np.array(rmv), np.array(rmse), np.zeros(n), np.full(n, 10))


def test_fit_weighs_relative_residuals() -> None:
    # RMSE = 2 RMV in the two small bins, 1.2 RMV in the large one. An absolute fit follows the
    # large bin; the relative fit solves the weighted normal equations worked out by hand.
    bins = _bins([1.0, 2.0, 10.0], [2.0, 4.0, 12.0])
    w = 1.0 / np.array([2.0, 4.0, 12.0]) ** 2
    x, y = np.array([1.0, 2.0, 10.0]), np.array([2.0, 4.0, 12.0])
    matrix = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
    expected = np.linalg.solve(matrix, [np.sum(w * x * y), np.sum(w * y)])
    assert fit_scale_offset(bins) == pytest.approx(tuple(expected))


def test_negative_offset_falls_back_to_a_scale() -> None:
    # exactly RMSE = 2 RMV - 1: the offset would make small stds negative
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 5.0])
    w = 1.0 / y**2
    scale, offset = fit_scale_offset(_bins(list(x), list(y)))
    assert offset == 0.0 and scale == pytest.approx(np.sum(w * x * y) / np.sum(w * x * x))


def test_bins_hand_computed() -> None:
    # two bins of two pixels: stds (1, 1) and (3, 3), errors (1, -1) and (2, 4)
    bins = bin_by_std(np.array([3.0, 1.0, 3.0, 1.0]), np.array([2.0, 1.0, 4.0, -1.0]), 2)
    np.testing.assert_allclose(bins.rmv, [1.0, 3.0])
    np.testing.assert_allclose(bins.rmse, [1.0, np.sqrt(10.0)])
    np.testing.assert_array_equal(bins.counts, [2, 2])
    # squared errors (4, 16): std of the mean 6 / sqrt(2), halved over sqrt(10) for the RMSE
    assert bins.rmse_stderr[1] == pytest.approx(
        np.std([4.0, 16.0], ddof=1) / np.sqrt(2) / (2 * np.sqrt(10))
    )


def test_too_few_pixels_are_refused() -> None:
    with pytest.raises(ValueError, match="too few"):
        bin_by_std(np.ones(10), np.ones(10), 20)
