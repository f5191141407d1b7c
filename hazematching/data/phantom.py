"""Procedural 3D fluorescent samples: filaments, nucleus-like blobs, membrane shells, puncta,
tissue-like texture and small vesicles.

Volumes are periodic in y and x (structures wrap around), which matches the FFT image formation
of `render.py` exactly. Object counts scale with the lateral field of view, so densities do not
depend on the image size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..config import SimulationConfig


def _periodic_offsets(size: int, centre: float) -> np.ndarray:
    """Signed distance from `centre` to each of `size` positions on a ring."""
    d = np.arange(size) - centre
    return (d + size / 2) % size - size / 2


def _object_count(rng: np.random.Generator, density: float, area_um2: float) -> int:
    """Poisson-distributed number of objects for a density per 100 um^2."""
    return int(rng.poisson(density * area_um2 / 100.0))


def _filaments(rng: np.random.Generator, volume: np.ndarray, count: int, z_per_px: float) -> None:
    """Add smooth, mostly lateral curves (cytoskeleton-like) by accumulating points."""
    planes, size, _ = volume.shape
    step = 0.5
    for _ in range(count):
        n = int(size * rng.uniform(0.6, 1.6) / step)
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.04, n))
        slope = rng.normal(0, 0.08) + np.cumsum(rng.normal(0, 0.005, n))
        y = rng.uniform(0, size) + np.cumsum(step * np.sin(heading))
        x = rng.uniform(0, size) + np.cumsum(step * np.cos(heading))
        z = rng.uniform(0, planes) + np.cumsum(step * slope * z_per_px)
        zi = np.clip(np.round(z), 0, planes - 1).astype(int)
        yi = np.round(y).astype(int) % size
        xi = np.round(x).astype(int) % size
        np.add.at(volume, (zi, yi, xi), rng.uniform(0.5, 1.5) * step)


def _ellipsoid_radius(
    shape: tuple[int, int, int], centre: np.ndarray, radii: np.ndarray
) -> np.ndarray:
    """Normalised ellipsoidal radius (1 on the surface) on the periodic lateral grid."""
    planes, size, _ = shape
    dz = (np.arange(planes) - centre[0])[:, None, None] / radii[0]
    dy = _periodic_offsets(size, centre[1])[None, :, None] / radii[1]
    dx = _periodic_offsets(size, centre[2])[None, None, :] / radii[2]
    return np.sqrt(dz**2 + dy**2 + dx**2)


def _puncta(rng: np.random.Generator, shape: tuple[int, int, int], count: int) -> np.ndarray:
    """Sub-resolution spots (single molecules, small vesicles): points blurred by ~1 px."""
    points = np.zeros(shape)
    if count:
        index = tuple(rng.integers(0, n, count) for n in shape)
        np.add.at(points, index, rng.uniform(0.5, 1.5, count))
    return ndimage.gaussian_filter(points, sigma=(0.5, 0.7, 0.7), mode="wrap") * 4.0


def _tissue(
    rng: np.random.Generator, shape: tuple[int, int, int], um_to_px: float, um_to_planes: float
) -> np.ndarray:
    """Dense, space-filling texture (cells packed in tissue): band-limited noise in [0, 1].

    The product of a cell-scale (~2 um) and a finer (~0.5 um) rectified noise field gives
    patchy, cell-sized regions with internal texture everywhere in the volume.
    """
    fields = []
    for scale_um in (2.0, 0.5):
        sigma = (scale_um * um_to_planes / 2, scale_um * um_to_px, scale_um * um_to_px)
        field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=sigma, mode="wrap")
        fields.append(np.maximum(field / (field.std() + 1e-12), 0.0))
    texture = fields[0] * fields[1]
    return texture / (np.percentile(texture, 99.9) + 1e-12)


def random_volume(rng: np.random.Generator, config: SimulationConfig, size: int) -> np.ndarray:
    """A (planes, size, size) float64 fluorescence density with the configured structures."""
    planes = config.planes
    shape = (planes, size, size)
    z_per_px = config.pixel_um / config.z_step_um
    area_um2 = (size * config.pixel_um) ** 2
    um_to_px = 1.0 / config.pixel_um
    um_to_planes = 1.0 / config.z_step_um

    points = np.zeros(shape)
    _filaments(rng, points, _object_count(rng, config.filaments, area_um2), z_per_px)
    volume = ndimage.gaussian_filter(points, sigma=(0.5, 0.8, 0.8), mode="wrap")

    texture = ndimage.gaussian_filter(rng.random(shape), sigma=(1.0, 2.0, 2.0), mode="wrap")
    texture = (texture - texture.min()) / (np.ptp(texture) + 1e-12)
    for _ in range(_object_count(rng, config.blobs, area_um2)):
        centre = rng.uniform((0, 0, 0), shape)
        radii = np.array(
            [rng.uniform(1.0, 2.5) * um_to_planes, *(rng.uniform(1.5, 3.5, 2) * um_to_px)]
        )
        r = _ellipsoid_radius(shape, centre, radii)
        inside = 1.0 / (1.0 + np.exp(np.clip((r - 1.0) / 0.05, -50, 50)))
        volume += rng.uniform(0.1, 0.3) * inside * (0.4 + 0.6 * texture)

    for _ in range(_object_count(rng, config.membranes, area_um2)):
        centre = rng.uniform((0, 0, 0), shape)
        radii = np.array(
            [rng.uniform(1.5, 3.0) * um_to_planes, *(rng.uniform(2.0, 5.0, 2) * um_to_px)]
        )
        r = _ellipsoid_radius(shape, centre, radii)
        shell = np.exp(-(((r - 1.0) * radii[1] / 0.8) ** 2))
        volume += rng.uniform(0.3, 0.8) * shell

    if config.puncta > 0:
        volume += _puncta(rng, shape, _object_count(rng, config.puncta, area_um2))
    if config.tissue > 0:
        volume += config.tissue * _tissue(rng, shape, um_to_px, um_to_planes)
    for _ in range(_object_count(rng, config.vesicles, area_um2)):
        centre = rng.uniform((0, 0, 0), shape)
        radius_um = rng.uniform(0.3, 0.8)
        radii = np.array([radius_um * um_to_planes, radius_um * um_to_px, radius_um * um_to_px])
        r = _ellipsoid_radius(shape, centre, radii)
        wall_px = max(0.6, 0.08 * um_to_px)
        volume += rng.uniform(0.4, 1.0) * np.exp(-(((r - 1.0) * radii[1] / wall_px) ** 2))

    if config.defocus_brightness != 1.0:
        depth_um = np.abs(np.arange(planes) - planes // 2) * config.z_step_um
        weight = np.where(depth_um > 1.0, config.defocus_brightness, 1.0)
        volume *= weight[:, None, None]
    return volume
