"""Image formation: one focal plane of a periodic 3D sample seen through a 3D PSF.

The image at focal plane f is sum_z (volume[z] (*) psf[z - f]), a 2D circular convolution per
plane. It is computed in Fourier space (one FFT per plane, one inverse FFT per image), which is
exact for a periodic sample and orders of magnitude faster than a direct convolution.
"""

from __future__ import annotations

import numpy as np


def axial_offsets(planes: int, z_step_um: float) -> np.ndarray:
    """Defocus of every plane offset -(planes-1) .. (planes-1), in micrometres."""
    return np.arange(-(planes - 1), planes) * z_step_um


def plane_defocus(planes: int, focal_plane: int, z_step_um: float) -> np.ndarray:
    """Defocus of each of the volume's planes when the microscope is focused at `focal_plane`."""
    return (np.arange(planes) - focal_plane) * z_step_um


def render_planes(volume: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Noise-free image of `volume` (Z, Y, X) through `psf` (Z, Y, X), plane z holding the PSF
    at the defocus of volume plane z (see `plane_defocus`)."""
    if psf.shape != volume.shape:
        raise ValueError(f"psf shape {psf.shape} does not fit volume shape {volume.shape}")
    spectrum = np.fft.rfft2(volume) * np.fft.rfft2(psf)
    return np.fft.irfft2(spectrum.sum(axis=0), s=volume.shape[-2:])


def render_focal_plane(volume: np.ndarray, psf: np.ndarray, focal_plane: int) -> np.ndarray:
    """Noise-free image of `volume` (Z, Y, X) focused at plane `focal_plane`.

    `psf` has 2Z-1 planes, plane j holding the PSF at defocus (j - (Z-1)) * z_step, as returned
    for `axial_offsets(Z, z_step)`; its lateral size must equal the volume's.
    """
    planes, height, width = volume.shape
    if psf.shape != (2 * planes - 1, height, width):
        raise ValueError(f"psf shape {psf.shape} does not fit volume shape {volume.shape}")
    index = np.arange(planes) - focal_plane + planes - 1
    return render_planes(volume, psf[index])
