"""Structural similarity (MS-SSIM, MicroMS3IM) and weight-free realism metrics.

The realism metrics are GMSD, FSIM and the distance of radially averaged log power spectra.

All functions take 2D float arrays. Realism metrics compare images in a common unit: each image
is mapped to [0, 1] by its own 0.1 and 99.9 percentiles (`percentile_normalize`), so a method
whose output is in other units (deconvolution) is compared by its structure, not its gain.
They are computed on non-overlapping patches (64 x 64 by default, as in the paper) and averaged.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .distortion import affine_fit

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW = 11  # Gaussian window of sigma 1.5, truncated to 11 pixels
SSIM_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03
GMSD_CONSTANT = 170.0 / 255.0**2  # the published constant for 8-bit images, for [0, 1] images
PATCH = 64


def _check_pair(target: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    target = np.asarray(target, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if target.shape != prediction.shape or target.ndim != 2:
        raise ValueError(
            f"need two 2D images of equal shape, got {target.shape}, {prediction.shape}"
        )
    return target, prediction


def _local_mean(image: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local mean, only where the whole window fits (valid region)."""
    radius = SSIM_WINDOW // 2
    blurred = ndimage.gaussian_filter(image, SSIM_SIGMA, truncate=radius / SSIM_SIGMA)
    return blurred[radius:-radius, radius:-radius]


def _ssim_terms(x: np.ndarray, y: np.ndarray, data_range: float) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term of one scale (Wang et al. 2004)."""
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    mx, my = _local_mean(x), _local_mean(y)
    vx = _local_mean(x * x) - mx**2
    vy = _local_mean(y * y) - my**2
    cov = _local_mean(x * y) - mx * my
    cs = (2 * cov + c2) / (vx + vy + c2)
    luminance = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    return float(np.mean(luminance * cs)), float(np.mean(cs))


def _downsample(image: np.ndarray) -> np.ndarray:
    """2 x 2 average pooling (an odd last row or column is dropped)."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def ms_ssim(target: np.ndarray, prediction: np.ndarray, data_range: float | None = None) -> float:
    """Multi-scale SSIM (Wang, Simoncelli and Bovik 2003) with the standard five weights.

    Scales are used while the image still holds a full 11 px window; with fewer than five the
    weights of the scales used are renormalised to sum to one (a 128 px image has four).
    Negative contrast-structure terms are clipped at zero so the product stays defined.
    """
    target, prediction = _check_pair(target, prediction)
    if min(target.shape) < SSIM_WINDOW:
        raise ValueError(f"MS-SSIM needs images of at least {SSIM_WINDOW} px")
    if data_range is None:
        data_range = float(target.max() - target.min()) or 1.0
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and min(target.shape) // 2**scales >= SSIM_WINDOW:
        scales += 1
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    values = []
    x, y = target, prediction
    for scale in range(scales):
        ssim, cs = _ssim_terms(x, y, data_range)
        values.append(ssim if scale == scales - 1 else cs)
        x, y = _downsample(x), _downsample(y)
    return float(np.prod(np.maximum(values, 0.0) ** weights))


def range_invariant_ms_ssim(target: np.ndarray, prediction: np.ndarray) -> float:
    """MS-SSIM after the same affine fit as the range-invariant PSNR."""
    target, prediction = _check_pair(target, prediction)
    return ms_ssim(target, affine_fit(target, prediction))


def micro_ms3im(
    target: np.ndarray, prediction: np.ndarray, background_percentile: float = 3.0
) -> float:
    """MicroMS3IM (Ashesh et al. 2024), implemented here from its definition.

    Each image loses its background (its 3rd percentile), both are divided by the target's
    maximum, and the prediction is multiplied by the factor that maximises the MS-SSIM (searched
    on a log grid around the least-squares factor) before MS-SSIM with a data range of 1. The
    `microssim` package cannot be installed next to the torch this project needs, so values can
    differ slightly from it (its factor comes from its own optimiser).
    """
    target, prediction = _check_pair(target, prediction)
    x = target - np.percentile(target, background_percentile)
    y = prediction - np.percentile(prediction, background_percentile)
    peak = float(x.max()) or 1.0
    x, y = x / peak, y / peak
    energy = float(np.sum(y * y))
    base = float(np.sum(x * y)) / energy if energy > 0 else 1.0
    factors = abs(base) * np.logspace(-1, 1, 41) if base != 0 else np.logspace(-2, 2, 41)
    return max(ms_ssim(x, factor * y, data_range=1.0) for factor in factors)


def percentile_normalize(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """Map the image's `low` and `high` percentiles to 0 and 1 (not clipped)."""
    image = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(image, [low, high])
    return (image - lo) / (hi - lo) if hi > lo else image - lo


def patches(image: np.ndarray, size: int = PATCH) -> list[np.ndarray]:
    """Non-overlapping size x size patches (the whole image if it is smaller)."""
    image = np.asarray(image)
    size_y, size_x = min(size, image.shape[0]), min(size, image.shape[1])
    return [
        image[r : r + size_y, c : c + size_x]
        for r in range(0, image.shape[0] - size_y + 1, size_y)
        for c in range(0, image.shape[1] - size_x + 1, size_x)
    ]


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    prewitt = np.array([[1.0, 0.0, -1.0]] * 3) / 3.0
    gx = ndimage.correlate(image, prewitt, mode="nearest")
    gy = ndimage.correlate(image, prewitt.T, mode="nearest")
    return np.hypot(gx, gy)


def gmsd(target: np.ndarray, prediction: np.ndarray) -> float:
    """Gradient magnitude similarity deviation (Xue et al. 2014) of two [0, 1] images.

    Both are 2 x 2 average-pooled first, as in the original; 0 means identical gradients,
    larger is worse.
    """
    target, prediction = _check_pair(target, prediction)
    gt = _gradient_magnitude(_downsample(target))
    gp = _gradient_magnitude(_downsample(prediction))
    similarity = (2 * gt * gp + GMSD_CONSTANT) / (gt**2 + gp**2 + GMSD_CONSTANT)
    return float(np.std(similarity))


def radial_log_spectrum(image: np.ndarray) -> np.ndarray:
    """log10 of the radially averaged power spectrum (Hann-windowed), rings 1 .. N/2 - 1."""
    image = np.asarray(image, dtype=np.float64)
    window = np.outer(np.hanning(image.shape[0]), np.hanning(image.shape[1]))
    power = np.abs(np.fft.fft2((image - image.mean()) * window)) ** 2 / window.sum() ** 2
    fy = np.fft.fftfreq(image.shape[0])[:, None] * min(image.shape)
    fx = np.fft.fftfreq(image.shape[1])[None, :] * min(image.shape)
    rings = np.round(np.hypot(fy, fx)).astype(int)
    count = min(image.shape) // 2
    keep = rings < count
    sums = np.bincount(rings[keep], power[keep], count)
    counts = np.bincount(rings[keep], minlength=count)
    return np.log10(sums[1:] / counts[1:] + 1e-20)


def spectral_distance(target: np.ndarray, prediction: np.ndarray) -> float:
    """RMS difference of the radially averaged log10 power spectra (0 = same texture scales)."""
    target, prediction = _check_pair(target, prediction)
    difference = radial_log_spectrum(prediction) - radial_log_spectrum(target)
    return float(np.sqrt(np.mean(difference**2)))


def patch_mean(metric, target: np.ndarray, prediction: np.ndarray, size: int = PATCH) -> float:
    """Mean of `metric(target_patch, prediction_patch)` over matching non-overlapping patches."""
    pairs = zip(patches(target, size), patches(prediction, size), strict=True)
    return float(np.mean([metric(t, p) for t, p in pairs]))


def phase_congruency(
    image: np.ndarray, scales: int = 4, orientations: int = 4, min_wavelength: float = 6.0
) -> np.ndarray:
    """Phase congruency (Kovesi 1999) with log-Gabor filters, summed over orientations.

    Where the Fourier components of an image are in phase (edges, lines) it approaches 1,
    elsewhere 0; it does not depend on contrast. Parameters follow FSIM's reference settings:
    wavelengths 6 x 2^s px, bandwidth sigma_f = 0.55, angular spread 1.2 x (pi / orientations),
    noise threshold mean + 2 std of the Rayleigh-distributed smallest-scale response, and a
    frequency-spread weighting that discounts responses of a single scale.
    """
    image = np.asarray(image, dtype=np.float64)
    rows, cols = image.shape
    spectrum = np.fft.fft2(image)
    fy = np.fft.fftfreq(rows)[:, None] * np.ones((1, cols))
    fx = np.ones((rows, 1)) * np.fft.fftfreq(cols)[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0  # avoids log(0); the DC term is removed below
    theta = np.arctan2(-fy, fx)
    lowpass = 1.0 / (1.0 + (radius / 0.45) ** 30)  # keeps the filters inside the Nyquist circle
    gabors = []
    for scale in range(scales):
        frequency = 1.0 / (min_wavelength * 2.0**scale)
        gabor = np.exp(-(np.log(radius / frequency) ** 2) / (2 * np.log(0.55) ** 2)) * lowpass
        gabor[0, 0] = 0.0
        gabors.append(gabor)
    energy_all = np.zeros_like(image)
    amplitude_all = np.zeros_like(image)
    spread_sigma = 1.2 * np.pi / orientations
    for orientation in range(orientations):
        angle = orientation * np.pi / orientations
        d_theta = np.abs(np.arctan2(np.sin(theta - angle), np.cos(theta - angle)))
        spread = np.exp(-(d_theta**2) / (2 * spread_sigma**2))
        responses = [np.fft.ifft2(spectrum * gabor * spread) for gabor in gabors]
        amplitudes = [np.abs(r) for r in responses]
        sum_even = sum(r.real for r in responses)
        sum_odd = sum(r.imag for r in responses)
        sum_amplitude = sum(amplitudes)
        norm = np.hypot(sum_even, sum_odd) + 1e-4
        mean_even, mean_odd = sum_even / norm, sum_odd / norm
        energy = sum(
            r.real * mean_even + r.imag * mean_odd - np.abs(r.real * mean_odd - r.imag * mean_even)
            for r in responses
        )
        # noise: the smallest scale's amplitude is Rayleigh distributed where there is no signal
        tau = np.median(amplitudes[0]) / np.sqrt(np.log(4.0))
        total_tau = tau * (1 - 0.5**scales) / (1 - 0.5)
        threshold = total_tau * np.sqrt(np.pi / 2) + 2.0 * total_tau * np.sqrt((4 - np.pi) / 2)
        energy = np.maximum(energy - threshold, 0.0)
        width = (sum_amplitude / (np.maximum.reduce(amplitudes) + 1e-4) - 1) / (scales - 1)
        weight = 1.0 / (1.0 + np.exp((0.5 - width) * 10.0))
        energy_all += weight * energy
        amplitude_all += sum_amplitude
    return energy_all / (amplitude_all + 1e-4)


def fsim(target: np.ndarray, prediction: np.ndarray) -> float:
    """Feature similarity index (Zhang et al. 2011) of two [0, 1] images; 1 = identical.

    Similarity of phase congruency (T1 = 0.85) times similarity of Scharr gradient magnitude
    (T2 = 160 / 255^2 for [0, 1] images), averaged with the larger phase congruency as weight.
    """
    target, prediction = _check_pair(target, prediction)
    pc_t, pc_p = phase_congruency(target), phase_congruency(prediction)
    scharr = np.array([[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]]) / 16.0
    grad = [
        np.hypot(
            ndimage.correlate(x, scharr, mode="nearest"),
            ndimage.correlate(x, scharr.T, mode="nearest"),
        )
        for x in (target, prediction)
    ]
    t1, t2 = 0.85, 160.0 / 255.0**2
    s_pc = (2 * pc_t * pc_p + t1) / (pc_t**2 + pc_p**2 + t1)
    s_g = (2 * grad[0] * grad[1] + t2) / (grad[0] ** 2 + grad[1] ** 2 + t2)
    weight = np.maximum(pc_t, pc_p)
    return float(np.sum(s_pc * s_g * weight) / np.sum(weight))
