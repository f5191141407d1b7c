"""Similarity and realism metrics against hand-worked values and independent formulas."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from hazematching.metrics.perceptual import frechet_distance
from hazematching.metrics.similarity import (
    GMSD_CONSTANT,
    SSIM_SIGMA,
    fsim,
    gmsd,
    micro_ms3im,
    ms_ssim,
    patch_mean,
    patches,
    percentile_normalize,
    phase_congruency,
    radial_log_spectrum,
    range_invariant_ms_ssim,
    spectral_distance,
)


def _smooth_image(seed: int, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    freq = np.fft.fftfreq(size)
    spectrum = np.fft.fft2(rng.standard_normal((size, size)))
    spectrum *= np.exp(-(freq[:, None] ** 2 + freq[None, :] ** 2) / (2 * 0.05**2))
    return np.real(np.fft.ifft2(spectrum)) + 1.0


def test_single_scale_ssim_matches_the_formula_on_one_window() -> None:
    """An 11 x 11 image has one valid window: SSIM from Gaussian-weighted global statistics."""
    rng = np.random.default_rng(0)
    x, y = rng.random((11, 11)), rng.random((11, 11))
    offsets = np.arange(11) - 5
    w = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * SSIM_SIGMA**2))
    w /= w.sum()
    mx, my = np.sum(w * x), np.sum(w * y)
    vx, vy = np.sum(w * x * x) - mx**2, np.sum(w * y * y) - my**2
    cov = np.sum(w * x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2  # data range 1
    expected = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert ms_ssim(x, y, data_range=1.0) == pytest.approx(expected, rel=1e-9)


def test_ms_ssim_identity_noise_and_affine_invariance() -> None:
    target = _smooth_image(1)
    rng = np.random.default_rng(2)
    assert ms_ssim(target, target) == pytest.approx(1.0)
    values = [ms_ssim(target, target + s * rng.standard_normal(target.shape)) for s in (0.01, 0.1)]
    assert 1.0 > values[0] > values[1] > 0.0
    noisy = target + 0.05 * rng.standard_normal(target.shape)
    assert range_invariant_ms_ssim(target, 4.0 * noisy - 7.0) == pytest.approx(
        range_invariant_ms_ssim(target, noisy), rel=1e-9
    )
    with pytest.raises(ValueError, match="at least 11"):
        ms_ssim(target[:8, :8], target[:8, :8])


def test_micro_ms3im_ignores_background_and_gain() -> None:
    target = _smooth_image(3)
    noisy = target + 0.05 * np.random.default_rng(4).standard_normal(target.shape)
    assert micro_ms3im(target, target) == pytest.approx(1.0)
    base = micro_ms3im(target, noisy)
    assert base < 1.0
    # a different background and gain (the grid search lands within one grid step)
    assert micro_ms3im(target, 3.0 * noisy + 10.0) == pytest.approx(base, abs=2e-3)


def test_gmsd_of_known_gradients() -> None:
    ramp = np.add.outer(np.arange(32.0), np.zeros(32)) / 32
    assert gmsd(ramp, ramp) == 0.0
    # Against a ramp twice as steep. After 2 x 2 pooling the ramp rises 1/16 per row, so the
    # Prewitt gradient is 1/8 inside and 1/16 on the 2 edge rows of 16 (nearest padding).
    c = GMSD_CONSTANT
    inside, edge = ((4 * g * g + c) / (5 * g * g + c) for g in (1 / 8, 1 / 16))
    p = 2 / 16
    expected = abs(inside - edge) * np.sqrt(p * (1 - p))  # std of a two-valued map
    assert gmsd(ramp, 2 * ramp) == pytest.approx(expected, rel=1e-9)
    # a flat prediction: similarity c / (g^2 + c) inside, different at the replicated edge rows
    assert gmsd(ramp, np.zeros_like(ramp)) > 0.0


def test_spectral_distance_of_a_gain_is_log10_of_its_square() -> None:
    image = _smooth_image(5, 64)
    assert spectral_distance(image, image) == 0.0
    assert spectral_distance(image, 2.0 * image) == pytest.approx(np.log10(4.0))


def test_radial_spectrum_peaks_at_the_frequency_of_a_cosine() -> None:
    grid = np.arange(64)
    image = np.cos(2 * np.pi * 10 * grid / 64)[None, :] * np.ones((64, 1))
    spectrum = radial_log_spectrum(image)
    assert int(np.argmax(spectrum)) + 1 == 10  # rings start at 1


def test_patches_and_patch_mean() -> None:
    image = np.arange(130 * 70, dtype=float).reshape(130, 70)
    tiles = patches(image)
    assert len(tiles) == 2 and all(t.shape == (64, 64) for t in tiles)
    assert np.array_equal(tiles[1], image[64:128, :64])
    assert patches(image[:20, :30])[0].shape == (20, 30)
    assert patch_mean(lambda t, p: float(t.mean() - p.mean()), image, image - 1.0) == 1.0


def test_frechet_distance_matches_the_matrix_square_root_formula() -> None:
    rng = np.random.default_rng(6)
    a = rng.standard_normal((200, 5))
    b = rng.standard_normal((150, 5)) @ rng.standard_normal((5, 5)) + 0.5
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(
        s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2))
    )
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a + 2.0) == pytest.approx(5 * 4.0, rel=1e-9)


def test_phase_congruency_marks_edges_whatever_their_contrast() -> None:
    step = np.zeros((64, 64))
    step[:, 32:] = 1.0
    pc = phase_congruency(step)
    # the edges on every row: at 32 and, as the FFT sees the image periodic, at 0
    assert set(np.argmax(pc, axis=1)) <= {0, 31, 32, 63}
    assert pc[:, 10].max() < 0.05 and pc[:, 31:33].min() > 0.5  # flat regions stay near 0
    np.testing.assert_allclose(phase_congruency(5.0 * step), pc, atol=1e-3)


def test_fsim_identity_and_degradation() -> None:
    target = percentile_normalize(_smooth_image(7, 64))
    rng = np.random.default_rng(8)
    assert fsim(target, target) == pytest.approx(1.0)
    noisy = [fsim(target, target + s * rng.standard_normal(target.shape)) for s in (0.02, 0.1)]
    assert 1.0 > noisy[0] > noisy[1] > 0.0
