"""Sliced Wasserstein distance of Laplacian-pyramid patches: formulas and behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hazematching.metrics.swd import (
    SwdSettings,
    _expand,
    band_count,
    laplacian_pyramid,
    sliced_wasserstein,
    swd,
)


def _textures(seed: int, count: int = 6, size: int = 64) -> list[np.ndarray]:
    """Smooth random images (correlation length a few pixels), values around 1."""
    rng = np.random.default_rng(seed)
    return [
        ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0) + 1.0 for _ in range(count)
    ]


def _noisy(images: list[np.ndarray], seed: int, sigma: float = 0.02) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [image + rng.normal(0.0, sigma, image.shape) for image in images]


def test_band_count_keeps_the_smallest_band_at_16_px() -> None:
    assert band_count((128, 128)) == 4
    assert band_count((40, 200)) == 2  # 40 -> 20 -> (10 too small)
    assert band_count((12, 12)) == 1
    assert band_count((4096, 4096)) == 4  # capped


def test_laplacian_pyramid_collapses_back_to_the_image() -> None:
    image = _textures(0, count=1, size=48)[0]
    pyramid = laplacian_pyramid(image, 3)
    assert [band.shape for band in pyramid] == [(48, 48), (24, 24), (12, 12)]
    collapsed = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        collapsed = band + _expand(collapsed, band.shape)
    np.testing.assert_allclose(collapsed, image, atol=1e-12)


def test_sliced_wasserstein_of_a_shifted_set_is_the_mean_projected_shift() -> None:
    rng = np.random.default_rng(1)
    points = rng.standard_normal((200, 5))
    shift = np.array([0.5, -1.0, 0.0, 2.0, 0.25])
    directions = rng.standard_normal((5, 7))
    directions /= np.linalg.norm(directions, axis=0)
    expected = np.mean(np.abs(shift @ directions))
    assert sliced_wasserstein(points, points + shift, directions) == pytest.approx(expected)
    # the order of the points does not matter, only their distribution
    shuffled = points[rng.permutation(200)]
    assert sliced_wasserstein(points, shuffled, directions) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="different shapes"):
        sliced_wasserstein(points, points[:10], directions)


def test_identical_sets_give_zero_and_a_gain_or_offset_costs_nothing() -> None:
    targets = _textures(2)
    assert all(value == 0.0 for value in swd(targets, targets).values())
    predictions = _noisy(targets, 3)
    plain = swd(targets, predictions)
    assert plain["mean"] > 0
    affine = swd(targets, [3.0 * p + 1.0 for p in predictions])
    for key, value in plain.items():
        assert affine[key] == pytest.approx(value, rel=1e-9)
    assert set(plain) == {"band_0", "band_1", "band_2", "mean"}  # 64 px: 64, 32, 16
    assert plain["mean"] == pytest.approx(np.mean([plain[f"band_{i}"] for i in range(3)]))


def test_another_noisy_acquisition_looks_more_like_the_targets_than_a_smooth_one() -> None:
    """The property a realism metric needs: same textures with fresh noise beat a blurred or a
    noise-free version of the very same images, although those are closer pixel by pixel."""
    clean = _textures(4, count=12)
    targets, second = _noisy(clean, 5, sigma=0.1), _noisy(clean, 6, sigma=0.1)
    blurred = [ndimage.gaussian_filter(image, 1.0) for image in second]
    to_second, to_blurred, to_clean = (swd(targets, s)["mean"] for s in (second, blurred, clean))
    assert to_second < 0.6 * to_blurred and to_second < 0.6 * to_clean
    # pixel by pixel the noise-free images are the closer ones
    mse = [
        np.mean([(t - s) ** 2 for t, s in zip(targets, x, strict=True)]) for x in (second, clean)
    ]
    assert mse[1] < mse[0]


def test_seeded_and_reproducible() -> None:
    targets, predictions = _textures(7), _noisy(_textures(7), 8)
    assert swd(targets, predictions) == swd(targets, predictions)
    other = swd(targets, predictions, SwdSettings(seed=1))
    assert other["mean"] != swd(targets, predictions)["mean"]


def test_bad_sets_are_refused() -> None:
    images = _textures(9, count=2)
    with pytest.raises(ValueError, match="same length"):
        swd(images, images[:1])
    with pytest.raises(ValueError, match="differ in shape"):
        swd(images, [images[0], images[1][:32]])
    with pytest.raises(ValueError, match="at least 7 px"):
        swd([np.ones((5, 5))], [np.ones((5, 5))])
