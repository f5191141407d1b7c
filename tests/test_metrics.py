"""Metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from hazematching.metrics.distortion import affine_fit, psnr, range_invariant_psnr, seam_ratio


def test_psnr_of_known_arrays() -> None:
    target = np.array([[0.0, 1.0], [0.0, 1.0]])
    prediction = np.array([[0.1, 0.9], [0.1, 0.9]])  # MSE 0.01, range 1 -> 20 dB
    assert psnr(target, prediction) == pytest.approx(20.0)
    assert psnr(target, prediction, data_range=10.0) == pytest.approx(40.0)
    assert psnr(target, target) == float("inf")


def test_range_invariant_psnr_ignores_gain_and_offset() -> None:
    rng = np.random.default_rng(0)
    target = rng.random((32, 32))
    prediction = target + 0.05 * rng.standard_normal((32, 32))
    base = range_invariant_psnr(target, prediction)
    assert range_invariant_psnr(target, 3.0 * prediction + 5.0) == pytest.approx(base)
    assert range_invariant_psnr(target, prediction) >= psnr(target, prediction) - 1e-9


def test_affine_fit_recovers_known_transform() -> None:
    rng = np.random.default_rng(1)
    target = rng.random(100)
    np.testing.assert_allclose(affine_fit(target, (target - 2.0) / 4.0), target, atol=1e-12)


def test_seam_ratio_of_a_known_step() -> None:
    # a plane x + y has |dx| = |dy| = 1 everywhere: no border stands out
    grid = np.add.outer(np.arange(20.0), np.arange(20.0))
    assert seam_ratio(grid, [7], [5, 12]) == pytest.approx(1.0)
    # a step of 3 at column 10 makes |dx| = 4 across that border, all other gradients stay 1
    stepped = grid + 3.0 * (np.arange(20) >= 10)
    assert seam_ratio(stepped, [], [10]) == pytest.approx(4.0)
    # pooled over a stack, and measured at a border without the step the step raises "other"
    assert seam_ratio(np.stack([stepped, grid]), [], [10]) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="no border"):
        seam_ratio(grid, [0], [20])
