"""Paired widefield/confocal images of procedural 3D samples, written as training data.

Each pair comes from its own random volume, imaged at the volume's central plane through a
widefield and a confocal PSF, with Poisson photon noise and Gaussian read noise. With
randomisation ranges, each pair first draws its own optics, noise and structures
(`randomization.py`). Pair i depends only on (seed, i), so asking for more pairs keeps the first
ones unchanged. Whole pairs are
assigned to train/val/test, so no sample is seen in two splits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._version import __version__
from ..config import SimulationConfig
from ..errors import HazeMatchingError
from ..fileio import check_output_folder, output_folder, write_json
from .phantom import random_volume
from .psf import confocal_psf, emission_psf
from .randomization import condition_record, draw_condition
from .render import plane_defocus, render_planes
from .tiff import INPUT_CHANNEL, TARGET_CHANNEL, write_tiff
from .unpaired import CONFOCAL, WIDEFIELD

SPLITS = ("train", "val", "test")
PSF_FILE = "widefield_psf.tif"


@dataclass(frozen=True)
class SimulatedPair:
    """Noise-free and noisy images of one simulated sample (all float32, Y x X), the seed of
    its random stream and the configuration it was drawn with."""

    widefield: np.ndarray
    confocal: np.ndarray
    widefield_clean: np.ndarray
    confocal_clean: np.ndarray
    seed: list[int]
    condition: SimulationConfig


@lru_cache(maxsize=4)
def _psfs(config: SimulationConfig, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(widefield, confocal) PSF stacks at the defocus of each plane of the volume, imaged at
    its central plane (see `render.render_planes`)."""
    offsets = plane_defocus(config.planes, config.planes // 2, config.z_step_um)
    optics = (
        config.psf_model,
        size,
        config.pixel_um,
        offsets,
        config.numerical_aperture,
        config.immersion_index,
    )
    aberrations = {
        "spherical_waves": config.spherical_aberration,
        "astigmatism_waves": config.astigmatism,
    }
    widefield = emission_psf(*optics, config.emission_nm, **aberrations)
    excitation = emission_psf(*optics, config.excitation_nm, **aberrations)
    confocal = confocal_psf(
        widefield,
        excitation,
        config.pixel_um,
        offsets,
        config.numerical_aperture,
        config.emission_nm,
        config.pinhole_au,
    )
    return widefield, confocal


def _add_noise(
    rng: np.random.Generator,
    clean: np.ndarray,
    photons: float,
    read_noise: float,
    background: float = 0.0,
    gain: float = 1.0,
) -> np.ndarray:
    """Scale so the 99.9th percentile receives `photons`, add a uniform background of
    `background` x `photons`, then Poisson + Gaussian read noise (in photons), times `gain`."""
    peak = float(np.percentile(clean, 99.9))
    expected = np.clip(clean, 0, None) * (photons / peak if peak > 0 else 0.0)
    noisy = rng.poisson(expected + background * photons).astype(np.float64)
    return ((noisy + rng.normal(0.0, read_noise, clean.shape)) * gain).astype(np.float32)


def _non_empty_volume(
    config: SimulationConfig, index: int
) -> tuple[list[int], np.random.Generator, np.ndarray]:
    """The seed, random stream and volume of pair `index`, redrawn while the volume is empty.

    Sparse structures in a small field can come out with no object at all; such a pair would
    be pure noise. Redraws use the streams (seed, index, attempt), so the first draw, and with it
    every non-empty pair, is the same as without this check.
    """
    for attempt in range(100):
        key = [config.seed, index] if attempt == 0 else [config.seed, index, 2, attempt]
        rng = np.random.default_rng(key)
        volume = random_volume(rng, config, config.size)
        if volume.max() > 0:
            return key, rng, volume
    raise HazeMatchingError(
        f"pair {index}: 100 draws gave an empty sample; raise the structure densities"
    )


def simulate_pair(config: SimulationConfig, index: int) -> SimulatedPair:
    """The pair number `index` of a simulation (deterministic in config.seed and index).

    The confocal image has no background: its pinhole rejects stray and out-of-focus light.
    """
    config = draw_condition(config, index)
    seed, rng, volume = _non_empty_volume(config, index)
    widefield_psf_stack, confocal_psf_stack = _psfs(config, config.size)
    wf_clean = render_planes(volume, widefield_psf_stack)
    cf_clean = render_planes(volume, confocal_psf_stack)
    return SimulatedPair(
        widefield=_add_noise(
            rng,
            wf_clean,
            config.widefield_photons,
            config.read_noise,
            config.background,
            config.widefield_gain,
        ),
        confocal=_add_noise(
            rng, cf_clean, config.confocal_photons, config.read_noise, gain=config.confocal_gain
        ),
        widefield_clean=wf_clean.astype(np.float32),
        confocal_clean=cf_clean.astype(np.float32),
        seed=seed,
        condition=config,
    )


def effective_widefield_psf(config: SimulationConfig) -> np.ndarray:
    """The 2D widefield PSF of a sample spread evenly over the simulated depth, centred.

    A sample with the same content in every plane images at the focal plane as that content
    convolved with the sum of the widefield PSF over the planes' defocus, so this is the PSF a
    2D deconvolution (Richardson-Lucy) can use for the simulated haze. It sums to 1; the optical
    axis is at pixel (size // 2, size // 2). Randomised simulations have no single PSF.
    """
    if config.randomize is not None:
        raise HazeMatchingError("a randomised simulation has no single widefield PSF")
    widefield, _ = _psfs(config, config.size)
    psf = widefield.sum(axis=0)
    return np.fft.fftshift(psf / psf.sum()).astype(np.float32)


def simulation_record(data_dir: Path) -> dict[str, object]:
    """{"simulation": config} from the simulation.json of `data_dir`; {} if it was not simulated
    (or the manifest is unreadable: then nothing can be said about it)."""
    manifest = Path(data_dir) / "simulation.json"
    try:
        return {"simulation": json.loads(manifest.read_text())["config"]}
    except (OSError, ValueError, KeyError):
        return {}


def assign_splits(config: SimulationConfig) -> list[str]:
    """Split name of every pair; val and test get at least one pair each when asked for."""
    n = config.pairs
    counts = [round(fraction * n) for fraction in config.split]
    for k in (1, 2):
        if config.split[k] > 0 and counts[k] == 0 and n >= 3:
            counts[k] = 1
    counts[0] = n - counts[1] - counts[2]
    if counts[0] < (1 if config.split[0] > 0 else 0):
        raise HazeMatchingError(f"{n} pairs are too few for the split {config.split}")
    labels = [name for name, count in zip(SPLITS, counts, strict=True) for _ in range(count)]
    order = np.random.default_rng(config.seed).permutation(n)
    return [labels[i] for i in np.argsort(order)]


def simulate(out_dir: Path, config: SimulationConfig, *, progress: bool = True) -> Path:
    """Write `config.pairs` paired TIFFs into out_dir/{train,val,test} and a parameter JSON.

    Each TIFF has shape (2, size, size), channel 0 = confocal target, channel 1 = widefield
    input; `widefield_psf.tif` holds the effective 2D widefield PSF (for deconvolution).
    With `config.unpaired`, out_dir/widefield/ and out_dir/confocal/ instead receive
    `config.pairs` single-channel images each, the widefield ones of samples 0, 2, 4, ... and the
    confocal ones of samples 1, 3, 5, ..., so no sample is seen by both (the split is unused).
    Returns the path of `simulation.json`, which records every parameter, the version,
    and the file, split and seed of every image.
    """
    out_dir = check_output_folder(out_dir)
    existing = [*out_dir.glob("*/pair_*.tif"), *out_dir.glob("*/sample_*.tif")]
    if existing:
        raise HazeMatchingError(
            "already holds simulated pairs or images; choose a new folder", out_dir
        )
    records = (_write_unpaired if config.unpaired else _write_pairs)(out_dir, config, progress)
    if config.randomize is None:
        write_tiff(out_dir / PSF_FILE, effective_widefield_psf(config), "YX")
    manifest = out_dir / "simulation.json"
    write_json(
        manifest,
        {
            "generator": f"hazematching {__version__}",
            "channels": (
                {"widefield/": "widefield input", "confocal/": "confocal target"}
                if config.unpaired
                else {"0": "confocal target", "1": "widefield input"}
            ),
            "config": config.model_dump(mode="json"),
            "pairs" if not config.unpaired else "images": records,
        },
    )
    return manifest


def _write_pairs(out_dir: Path, config: SimulationConfig, progress: bool) -> list[dict]:
    """Paired 2-channel TIFFs in train/, val/ and test/; their records."""
    splits = assign_splits(config)
    output_folder(out_dir)
    for name in set(splits):
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    records = []
    for index in tqdm(range(config.pairs), desc="simulate", unit="pair", disable=not progress):
        pair = simulate_pair(config, index)
        stack = np.empty((2, config.size, config.size), dtype=np.float32)
        stack[TARGET_CHANNEL] = pair.confocal
        stack[INPUT_CHANNEL] = pair.widefield
        relative = Path(splits[index]) / f"pair_{index:05d}.tif"
        write_tiff(out_dir / relative, stack, "CYX", ["confocal", "widefield"])
        records.append(
            {
                "file": relative.as_posix(),
                "split": splits[index],
                "seed": pair.seed,
                **_condition(config, pair),
            }
        )
    return records


def _write_unpaired(out_dir: Path, config: SimulationConfig, progress: bool) -> list[dict]:
    """Single-channel TIFFs in widefield/ and confocal/, each of its own sample; their records."""
    output_folder(out_dir)
    for side in (WIDEFIELD, CONFOCAL):
        (out_dir / side).mkdir(exist_ok=True)
    records = []
    for index in tqdm(range(2 * config.pairs), desc="simulate", unit="image", disable=not progress):
        pair = simulate_pair(config, index)
        side, image = (WIDEFIELD, pair.widefield) if index % 2 == 0 else (CONFOCAL, pair.confocal)
        relative = Path(side) / f"sample_{index:05d}.tif"
        write_tiff(out_dir / relative, image, "YX")
        records.append(
            {
                "file": relative.as_posix(),
                "side": side,
                "seed": pair.seed,
                **_condition(config, pair),
            }
        )
    return records


def _condition(config: SimulationConfig, pair: SimulatedPair) -> dict[str, object]:
    """{"condition": drawn factors} of a randomised pair, nothing for a fixed configuration."""
    if config.randomize is None:
        return {}
    return {"condition": condition_record(pair.condition)}
