"""Metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from hazematching.metrics import affine_fit, psnr, range_invariant_psnr


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
