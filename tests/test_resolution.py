"""Fourier ring correlation against cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from hazematching.metrics.resolution import fourier_ring_correlation


def _image(seed: int, shape: tuple[int, int] = (128, 128)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("shape", [(128, 128), (96, 160)])
def test_image_with_itself_correlates_fully(shape: tuple[int, int]) -> None:
    image = _image(0, shape)
    frc = fourier_ring_correlation(image, 3.0 * image + 7.0)  # gain and offset do not matter
    np.testing.assert_allclose(frc.correlation[1:], 1.0, atol=1e-12)
    assert frc.frequency[-1] == pytest.approx(0.5)
    assert frc.resolution(1 / 7) == 2.0  # never drops: Nyquist


def test_independent_noise_does_not_correlate() -> None:
    frc = fourier_ring_correlation(_image(1, (256, 256)), _image(2, (256, 256)))
    # a ring of radius r holds about 2 pi r frequencies, fewer independent ones after the window:
    # |FRC| is of order 1 / sqrt(r), i.e. below 0.1 on average beyond the first rings
    assert np.abs(frc.correlation[10:]).mean() < 0.1


def test_blur_lowers_the_resolution() -> None:
    truth = _image(3)
    noisy = truth + 0.5 * _image(4)
    sharp = fourier_ring_correlation(truth, noisy).resolution(0.5)
    blurred = fourier_ring_correlation(truth, gaussian_filter(noisy, 2.0)).resolution(0.5)
    assert blurred > sharp


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="equal shape"):
        fourier_ring_correlation(_image(0, (32, 32)), _image(0, (32, 30)))
