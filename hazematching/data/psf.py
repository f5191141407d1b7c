"""Widefield and confocal point spread functions from a scalar defocus pupil model.

The amplitude PSF at defocus z is the inverse Fourier transform of a circular pupil of radius
NA/lambda with the defocus phase exp(2 pi i z sqrt((n/lambda)^2 - k^2)). Its intensity has the
axial tails of a real widefield microscope: by Parseval every defocused plane carries the same
total energy as the focal plane, which is exactly the out-of-focus haze. A confocal microscope
multiplies the excitation PSF with the emission PSF seen through a pinhole, which removes most of
that energy away from focus (optical sectioning).

PSFs are returned on a periodic grid with the optical axis at pixel (0, 0), ready for FFT
convolution with a periodic sample.
"""

from __future__ import annotations

import numpy as np


def _radial_frequency(size: int, pixel_um: float) -> np.ndarray:
    """|k| in cycles per micrometre on the FFT grid of a size x size image."""
    freq = np.fft.fftfreq(size, d=pixel_um)
    return np.hypot(freq[:, None], freq[None, :])


def defocus_psf(
    size: int,
    pixel_um: float,
    defocus_um: np.ndarray,
    numerical_aperture: float,
    immersion_index: float,
    wavelength_nm: float,
) -> np.ndarray:
    """Intensity PSF planes of shape (len(defocus_um), size, size); the focal plane sums to 1."""
    wavelength_um = wavelength_nm / 1000.0
    k = _radial_frequency(size, pixel_um)
    pupil = k <= numerical_aperture / wavelength_um
    kz = np.sqrt(np.maximum((immersion_index / wavelength_um) ** 2 - k**2, 0.0))
    phase = np.exp(2j * np.pi * np.asarray(defocus_um, dtype=float)[:, None, None] * kz)
    field = np.fft.ifft2(pupil * phase)
    intensity = np.abs(field) ** 2
    in_focus = np.abs(np.fft.ifft2(pupil.astype(complex))) ** 2
    return intensity / in_focus.sum()


def _disc(size: int, radius_px: float) -> np.ndarray:
    """A normalised disc of the given radius centred on pixel (0, 0) of a periodic grid."""
    offset = np.fft.fftfreq(size, d=1.0 / size)  # 0, 1, ..., -1: periodic pixel distance
    r = np.hypot(offset[:, None], offset[None, :])
    disc = (r <= max(radius_px, 0.5)).astype(float)
    return disc / disc.sum()


def widefield_psf(
    size: int,
    pixel_um: float,
    defocus_um: np.ndarray,
    numerical_aperture: float,
    immersion_index: float,
    emission_nm: float,
) -> np.ndarray:
    """Widefield PSF: the emission PSF alone (uniform excitation)."""
    return defocus_psf(size, pixel_um, defocus_um, numerical_aperture, immersion_index, emission_nm)


def confocal_psf(
    size: int,
    pixel_um: float,
    defocus_um: np.ndarray,
    numerical_aperture: float,
    immersion_index: float,
    excitation_nm: float,
    emission_nm: float,
    pinhole_au: float,
) -> np.ndarray:
    """Confocal PSF: excitation PSF x (emission PSF convolved with the pinhole disc).

    One Airy unit is the diameter 1.22 lambda_em / NA of the emission Airy disc. The result is
    normalised so that its focal plane sums to 1, like the widefield PSF.
    """
    excitation = defocus_psf(
        size, pixel_um, defocus_um, numerical_aperture, immersion_index, excitation_nm
    )
    emission = defocus_psf(
        size, pixel_um, defocus_um, numerical_aperture, immersion_index, emission_nm
    )
    radius_px = 0.5 * pinhole_au * 1.22 * (emission_nm / 1000.0) / numerical_aperture / pixel_um
    pinhole = np.fft.fft2(_disc(size, radius_px))
    detected = np.real(np.fft.ifft2(np.fft.fft2(emission) * pinhole))
    psf = excitation * np.maximum(detected, 0.0)
    focus = int(np.argmin(np.abs(np.asarray(defocus_um, dtype=float))))
    return psf / psf[focus].sum()
