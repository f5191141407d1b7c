"""Widefield and confocal point spread functions from three optical models.

- `scalar`: a circular pupil of radius NA/lambda with the defocus phase
  exp(2 pi i z sqrt((n/lambda)^2 - k^2)), optionally with primary spherical aberration and
  astigmatism (Zernike terms, in waves RMS). By Parseval every defocused plane carries the same
  total energy as the focal plane, which is exactly the out-of-focus haze.
- `vectorial`: the Gibson-Lanni / Aguet vectorial model of `psfmodels` (polarisation and
  high-angle effects, which widen the focus at high NA), with matched refractive indices.
- `gaussian`: a Gaussian per plane whose width matches the in-focus spot (0.21 lambda/NA) and
  the second moment of the geometric defocus cone, each plane with the energy of the focus.

A confocal microscope multiplies the excitation PSF with the emission PSF seen through a pinhole,
which removes most of the energy away from focus (optical sectioning). PSFs are returned on a
periodic grid with the optical axis at pixel (0, 0), ready for FFT convolution with a periodic
sample; every stack is normalised so that its focal plane sums to 1.
"""

from __future__ import annotations

from typing import get_args

import numpy as np

from ..config import PsfModel

PSF_MODELS: tuple[str, ...] = get_args(PsfModel)


def _radial_frequency(size: int, pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    """(ky, kx) in cycles per micrometre on the FFT grid of a size x size image."""
    freq = np.fft.fftfreq(size, d=pixel_um)
    return np.broadcast_arrays(freq[:, None], freq[None, :])


def _focal_normalised(stack: np.ndarray, defocus_um: np.ndarray) -> np.ndarray:
    """`stack` divided by the sum of its plane nearest to focus."""
    focus = int(np.argmin(np.abs(np.asarray(defocus_um, dtype=float))))
    return stack / stack[focus].sum()


def _scalar(
    size: int,
    pixel_um: float,
    defocus_um: np.ndarray,
    numerical_aperture: float,
    immersion_index: float,
    wavelength_um: float,
    spherical_waves: float,
    astigmatism_waves: float,
) -> np.ndarray:
    """Scalar pupil model with optional balanced spherical aberration and astigmatism.

    A pupil wider than the pixel grid's Nyquist frequency (coarse pixels, short wavelength, high
    NA) would be clipped by the FFT grid; the PSF is then computed on an odd factor finer grid
    and each output pixel integrates its sub-pixels, as a camera pixel does.
    """
    factor = 1
    while numerical_aperture / wavelength_um > factor / (2 * pixel_um):
        factor += 2
    if factor > 1:
        fine = _scalar(
            size * factor,
            pixel_um / factor,
            defocus_um,
            numerical_aperture,
            immersion_index,
            wavelength_um,
            spherical_waves,
            astigmatism_waves,
        )
        # sub-pixels -(f-1)/2 .. (f-1)/2 around each pixel centre, summed
        fine = np.roll(fine, (factor - 1) // 2, axis=(-2, -1))
        return fine.reshape(len(fine), size, factor, size, factor).sum(axis=(2, 4))
    ky, kx = _radial_frequency(size, pixel_um)
    k = np.hypot(ky, kx)
    cutoff = numerical_aperture / wavelength_um
    pupil = (k <= cutoff).astype(complex)
    if spherical_waves or astigmatism_waves:
        rho2 = (k / cutoff) ** 2
        spherical = np.sqrt(5.0) * (6 * rho2**2 - 6 * rho2 + 1)  # Zernike Z(4,0), unit RMS
        astigmatism = np.sqrt(6.0) * (ky**2 - kx**2) / cutoff**2  # Zernike Z(2,2), unit RMS
        phase = spherical_waves * spherical + astigmatism_waves * astigmatism
        pupil = pupil * np.exp(2j * np.pi * phase)
    kz = np.sqrt(np.maximum((immersion_index / wavelength_um) ** 2 - k**2, 0.0))
    defocus = np.exp(2j * np.pi * np.asarray(defocus_um, dtype=float)[:, None, None] * kz)
    return np.abs(np.fft.ifft2(pupil * defocus)) ** 2


def _vectorial(
    size: int,
    pixel_um: float,
    defocus_um: np.ndarray,
    numerical_aperture: float,
    immersion_index: float,
    wavelength_um: float,
) -> np.ndarray:
    """psfmodels' vectorial PSF, computed centred on a wider grid and folded periodic.

    The grid is at least twice the image and wide enough for the geometric cone of the most
    defocused plane (radius |z| tan(theta), with 10 % to spare); folding its aliases into the
    size x size ring keeps the defocused energy that a centred crop would lose, like the
    periodic scalar model.
    """
    import psfmodels

    tangent = np.tan(np.arcsin(min(numerical_aperture / immersion_index, 0.999)))
    cone_px = 1.1 * float(np.max(np.abs(defocus_um))) * tangent / pixel_um
    wide = 2 * max(size, int(np.ceil(cone_px))) + 1  # psfmodels needs an odd width
    params = {
        "NA": numerical_aperture,
        "ni": immersion_index,
        "ni0": immersion_index,
        "ns": immersion_index,
        "sf": 1,
    }
    centred = psfmodels.vectorial_psf(
        np.asarray(defocus_um, dtype=float),
        wide,
        pixel_um,
        pz=0.0,
        wvl=wavelength_um,
        params=params,
        normalize=False,
    )
    index = (np.arange(wide) - wide // 2) % size
    folded = np.zeros((len(defocus_um), size, size))
    np.add.at(folded, (slice(None), index[:, None], index[None, :]), centred)
    return folded


def _gaussian(
    size: int,
    pixel_um: float,
    defocus_um: np.ndarray,
    numerical_aperture: float,
    immersion_index: float,
    wavelength_um: float,
) -> np.ndarray:
    """Gaussian planes: in-focus std 0.21 lambda/NA, growing like the geometric defocus cone.

    A uniform disc of radius z tan(theta) has a per-axis std of half its radius, so the std at
    defocus z is sqrt(s0^2 + (z tan(theta) / 2)^2) with sin(theta) = NA / n.
    """
    sigma0 = 0.21 * wavelength_um / numerical_aperture
    tangent = np.tan(np.arcsin(min(numerical_aperture / immersion_index, 0.999)))
    sigma = np.sqrt(sigma0**2 + (0.5 * np.asarray(defocus_um, dtype=float) * tangent) ** 2)
    offset = np.fft.fftfreq(size, d=1.0 / size) * pixel_um  # periodic distance in um
    r2 = offset[:, None] ** 2 + offset[None, :] ** 2
    planes = np.exp(-r2[None] / (2 * sigma[:, None, None] ** 2))
    return planes / planes.sum(axis=(1, 2), keepdims=True)


def emission_psf(
    model: PsfModel,
    size: int,
    pixel_um: float,
    defocus_um: np.ndarray,
    numerical_aperture: float,
    immersion_index: float,
    wavelength_nm: float,
    *,
    spherical_waves: float = 0.0,
    astigmatism_waves: float = 0.0,
) -> np.ndarray:
    """Intensity PSF planes (len(defocus_um), size, size) of one wavelength; focus sums to 1.

    The aberration terms apply to the scalar model only (the others are aberration-free).
    """
    optics = (size, pixel_um, defocus_um, numerical_aperture, immersion_index, wavelength_nm / 1e3)
    if model == "scalar":
        stack = _scalar(*optics, spherical_waves, astigmatism_waves)
    elif model == "vectorial":
        stack = _vectorial(*optics)
    elif model == "gaussian":
        stack = _gaussian(*optics)
    else:
        raise ValueError(f"unknown PSF model {model!r}; choose one of {', '.join(PSF_MODELS)}")
    return _focal_normalised(stack, defocus_um)


def _disc(size: int, radius_px: float) -> np.ndarray:
    """A normalised disc of the given radius centred on pixel (0, 0) of a periodic grid."""
    offset = np.fft.fftfreq(size, d=1.0 / size)  # 0, 1, ..., -1: periodic pixel distance
    r = np.hypot(offset[:, None], offset[None, :])
    disc = (r <= max(radius_px, 0.5)).astype(float)
    return disc / disc.sum()


def confocal_psf(
    emission: np.ndarray,
    excitation: np.ndarray,
    pixel_um: float,
    defocus_um: np.ndarray,
    numerical_aperture: float,
    emission_nm: float,
    pinhole_au: float,
) -> np.ndarray:
    """Confocal PSF: excitation PSF x (emission PSF convolved with the pinhole disc).

    One Airy unit is the diameter 1.22 lambda_em / NA of the emission Airy disc. The result is
    normalised so that its focal plane sums to 1, like the widefield PSF.
    """
    size = emission.shape[-1]
    radius_px = 0.5 * pinhole_au * 1.22 * (emission_nm / 1000.0) / numerical_aperture / pixel_um
    pinhole = np.fft.fft2(_disc(size, radius_px))
    detected = np.real(np.fft.ifft2(np.fft.fft2(emission) * pinhole))
    return _focal_normalised(excitation * np.maximum(detected, 0.0), defocus_um)
