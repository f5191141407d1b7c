"""Render paired widefield/confocal test images with microsim, an independent simulator.

hazematching's models are trained on pairs from the toolkit's own simulator. A test set rendered by
a simulator written by other people -- another sample model (microsim's `MatsLines` filaments),
vectorial PSFs, a camera model with Poisson, dark and read noise -- shows whether a model learned
to remove out-of-focus haze or only the quirks of the simulator it was trained on. This script
therefore imports only microsim, numpy, tifffile and the standard library, never hazematching.

Usage (run with the Python of the environment that holds microsim):

    MICROSIM_CACHE=0 OMP_NUM_THREADS=1 python microsim_pairs.py OUT --pairs 20 --size 128 --seed 0

For each pair, one 3D ground truth (`MatsLines` with its own seed, 6 um deep, with a lateral
margin so that haze from outside the field reaches its border as it reaches its centre) is
imaged by the same objective and camera twice, with microsim's `Widefield()` and
`Confocal(pinhole_au=1)` modalities; the central plane of each is kept, binned 2 x 2 to the
output pixel and cropped to `size` px. The exposure of each image is set so that its noise-free
99.9th percentile is a fixed number of photoelectrons (the photon-level convention of
hazematching's simulator), then microsim's camera adds shot, dark and read noise.

Output: OUT/test/pair_00000.tif ..., float32 (2, size, size) with axes CYX, channel 0 = confocal
(target) and channel 1 = widefield (hazy input), in photoelectrons (gray value minus the camera
offset, at 1 gray value per electron); OUT/microsim.json records every parameter and per-pair
seed. The same arguments give the same files. Everything runs offline: the microsim caches are
off and the fluorophore is microsim's built-in mock one (naming a fluorophore queries fpbase.org).

Two sampling details of microsim 0.0.12 are worked around so that the pairs are registered:
the widefield PSF is rendered with one more pixel and plane than the volume and the confocal PSF
with exactly the volume's size, so an even size puts one of them half a voxel off centre. The
widefield gets the even-sized volume (odd PSF) and the confocal the same volume padded with one
empty plane, row and column at the far side, outside the kept field (odd PSF as well); this
needs `max_psf_radius_aus=None` (the default of 6 Airy units is not applied anyway in 0.0.12: the
limit compares a wavelength in nm with a pixel size in um).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import microsim
import numpy as np
import tifffile
from microsim.schema import (
    CameraCMOS,
    Confocal,
    DownscaledSpace,
    FluorophoreDistribution,
    MatsLines,
    ObjectiveLens,
    Sample,
    Settings,
    ShapeScaleSpace,
    Simulation,
    Widefield,
)
from microsim.schema.optical_config.lib import FITC
from microsim.schema.sample.sample import MOCK_FLUOR

TRUTH_PIXEL_UM = 0.05  # lateral voxel of the ground truth
BINNING = 2  # truth pixels per output pixel along Y and X: output pixel 0.1 um
Z_PLANES = 40  # even: the widefield PSF then has an odd number of planes (see the docstring)
Z_STEP_UM = 0.15  # 40 planes x 0.15 um = 6 um of sample, about 3 um on each side of focus
MARGIN_FRACTION = 0.25  # lateral margin on each side, as a fraction of the output size
LINES_PER_100_UM2 = 50.0  # MatsLines filaments per 100 um^2 of the rendered field
LINE_LENGTH = 10  # MatsLines `length`: lengths of 1/20 to 11/20 of the field side
LINE_AZIMUTH = 10  # MatsLines `azimuth`: lines within 180/10 degrees of the XY plane
LINE_MAX_R = 2.0  # MatsLines `max_r` > sqrt(3): lines fill the whole box (0.9 leaves corners empty)
CONCENTRATION = 3e4  # fluorophores per unit of the MatsLines array
# Oil objective, microsim's defaults apart from the NA. The NA must be given as `na`: the
# keyword `numerical_aperture` is silently ignored (it is only the field's name, not its alias).
OBJECTIVE = ObjectiveLens(na=1.3)
CHANNEL = FITC  # 470/40 excitation, 495 dichroic, 525/50 emission (analytic filter spectra)
CAMERA = CameraCMOS(
    name="16-bit sCMOS, 1 gray value per electron",
    qe=0.8,
    read_noise=1.5,
    dark_current=0.06,
    full_well=65535,
    bit_depth=16,
    offset=100,
    gain=1.0,
)
WIDEFIELD_PHOTONS = 200.0  # noise-free 99.9th percentile of the widefield image (electrons)
CONFOCAL_PHOTONS = 2000.0  # noise-free 99.9th percentile of the confocal image (electrons)
# microsim's in-memory PSF cache keys on the backend, whose hash includes the random seed. The
# optics are deterministic, so they are rendered under this fixed seed (one PSF per modality for
# the whole run, reused) and only the detector noise gets each pair's own seed.
OPTICS_SEED = 0
SETTINGS = {"np_backend": "numpy", "cache": False, "max_psf_radius_aus": None}


class PairsError(Exception):
    """An expected failure, reported as one line on stderr."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Render paired widefield/confocal test images with microsim."
    )
    parser.add_argument("out", type=Path, help="output folder (pairs go to OUT/test/)")
    parser.add_argument("--pairs", type=int, default=20, help="number of pairs (default 20)")
    parser.add_argument("--size", type=int, default=128, help="image side in px (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        raise PairsError(f"--pairs must be at least 1, got {args.pairs}")
    if not 16 <= args.size <= 1024:
        raise PairsError(f"--size must be between 16 and 1024 px, got {args.size}")
    if args.seed < 0:
        raise PairsError(f"--seed must be non-negative, got {args.seed}")
    return args


def check_out(out: Path) -> None:
    """Refuse an OUT that is a file or already holds pairs or a record."""
    if out.exists() and not out.is_dir():
        raise PairsError(f"{out} exists and is not a folder")
    existing = sorted((out / "test").glob("pair_*.tif"))
    if existing:
        raise PairsError(
            f"{out / 'test'} already holds {len(existing)} pairs ({existing[0].name}, ...); "
            "choose a new OUT or remove them"
        )
    if (out / "microsim.json").exists():
        raise PairsError(f"{out / 'microsim.json'} already exists; choose a new OUT")


def pair_seeds(seed: int, index: int) -> dict[str, int]:
    """Independent seeds of one pair's ground truth and the noise of its two images."""
    truth, widefield, confocal = np.random.SeedSequence([seed, index]).generate_state(3)
    return {
        "truth_seed": int(truth),
        "widefield_noise_seed": int(widefield),
        "confocal_noise_seed": int(confocal),
    }


def field_px(size: int) -> int:
    """Side of the rendered field in output pixels: the image plus a margin on each side."""
    return size + 2 * round(MARGIN_FRACTION * size)


def matslines(size: int) -> MatsLines:
    """The filament model; its line count is proportional to the field side, hence the density."""
    side_px = field_px(size) * BINNING
    area_um2 = (side_px * TRUTH_PIXEL_UM) ** 2
    density = LINES_PER_100_UM2 * area_um2 / 100.0 / side_px
    return MatsLines(density=density, length=LINE_LENGTH, azimuth=LINE_AZIMUTH, max_r=LINE_MAX_R)


def render_truth(size: int, truth_seed: int) -> np.ndarray:
    """One (Z, Y, X) volume of fluorophore counts from microsim's `MatsLines` model."""
    side = field_px(size) * BINNING
    simulation = Simulation(
        truth_space=ShapeScaleSpace(
            shape=(Z_PLANES, side, side), scale=(Z_STEP_UM, TRUTH_PIXEL_UM, TRUTH_PIXEL_UM)
        ),
        sample=Sample(
            labels=[
                FluorophoreDistribution(distribution=matslines(size), concentration=CONCENTRATION)
            ]
        ),
        settings=Settings(random_seed=truth_seed, **SETTINGS),
    )
    return np.asarray(simulation.ground_truth().isel(f=0).data, dtype=np.float32)


def render_image(
    truth: np.ndarray,
    modality: Widefield | Confocal,
    size: int,
    noise_seed: int,
    photons: float,
) -> tuple[np.ndarray, float]:
    """The noisy central plane of `truth` in photoelectrons, cropped to size, and its exposure."""
    nz, ny, nx = truth.shape
    if isinstance(modality, Confocal):  # odd-sized volume -> centred confocal PSF
        truth = np.pad(truth, ((0, 1), (0, 1), (0, 1)))
    simulation = Simulation.from_ground_truth(
        truth,
        (Z_STEP_UM, TRUTH_PIXEL_UM, TRUTH_PIXEL_UM),
        modality=modality,
        objective_lens=OBJECTIVE,
        channels=[CHANNEL],
        detector=CAMERA,
        output_space=DownscaledSpace(downscale=(1, BINNING, BINNING)),
        settings=Settings(random_seed=OPTICS_SEED, **SETTINGS),
    )
    plane = simulation.optical_image().isel(z=[nz // 2], y=slice(0, ny), x=slice(0, nx))
    margin = (nx // BINNING - size) // 2
    crop = (0, 0, slice(margin, margin + size), slice(margin, margin + size))
    rate = np.asarray(simulation.digital_image(plane, exposure_ms=1000, with_detector_noise=False))
    peak_rate = float(np.percentile(rate[crop], 99.9))  # electrons per second
    if peak_rate <= 0:
        raise PairsError(f"{type(modality).__name__} image is empty: no filament in the field")
    exposure_ms = 1000.0 * photons / peak_rate
    simulation.settings.random_seed = noise_seed
    gray = np.asarray(simulation.digital_image(plane, exposure_ms=exposure_ms))
    if gray.max() >= CAMERA.max_intensity:
        raise PairsError(f"{type(modality).__name__} image saturates the camera")
    electrons = (gray[crop].astype(np.float32) - CAMERA.offset) * CAMERA.adc_gain / CAMERA.gain
    return electrons, exposure_ms


def haze_ratio(image: np.ndarray) -> float:
    """Median over 99.9th percentile: near 0 for a clean image, larger for a hazy one."""
    return float(np.median(image) / np.percentile(image, 99.9))


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """A hidden temporary path in path's folder, moved onto path if the block succeeds."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def emission_centroid_nm() -> float:
    """Wavelength of microsim's single-bin PSFs: centroid of the filtered emission (>1% of peak)."""
    dummy = Simulation.from_ground_truth(
        np.zeros((2, 2, 2), np.float32),
        (Z_STEP_UM, TRUTH_PIXEL_UM, TRUTH_PIXEL_UM),
        channels=[CHANNEL],
        detector=CAMERA,
        settings=Settings(random_seed=OPTICS_SEED, **SETTINGS),
    )
    rates = dummy.filtered_emission_rates().isel(c=0, f=0)
    rates = rates[rates > 0.01 * rates.max()]
    return float((rates.w * rates).sum() / rates.sum())


def record(args: argparse.Namespace, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every parameter of the run, for OUT/microsim.json."""
    side = field_px(args.size) * BINNING
    return {
        "generator": "docs/results/robustness/microsim_pairs.py (hazematching repository)",
        "purpose": "independent-simulator test set for dehazing models",
        "versions": {
            "microsim": microsim.__version__,
            "numpy": np.__version__,
            "tifffile": tifffile.__version__,
        },
        "arguments": {"pairs": args.pairs, "size": args.size, "seed": args.seed},
        "seeding": "per pair: numpy SeedSequence([seed, index]).generate_state(3) -> truth, "
        "widefield noise, confocal noise; optics rendered under a fixed seed",
        "layout": {
            "files": "test/pair_NNNNN.tif",
            "array": f"float32 (2, {args.size}, {args.size}), axes CYX",
            "channels": ["confocal (target)", "widefield (hazy input)"],
            "units": "photoelectrons: (gray value - offset) * adc_gain / gain",
        },
        "ground_truth": {
            "model": "microsim MatsLines",
            "parameters": matslines(args.size).model_dump(mode="json"),
            "lines": int(side * matslines(args.size).density),  # MatsLines' own line count
            "lines_per_100_um2": LINES_PER_100_UM2,
            "concentration": CONCENTRATION,
            "shape_zyx": [Z_PLANES, side, side],
            "voxel_um_zyx": [Z_STEP_UM, TRUTH_PIXEL_UM, TRUTH_PIXEL_UM],
            "depth_um": Z_PLANES * Z_STEP_UM,
            "imaged_plane": Z_PLANES // 2,
            "lateral_margin_output_px": (field_px(args.size) - args.size) // 2,
            "confocal_padding": "one empty plane, row and column at the far side (centred PSF)",
        },
        "fluorophore": {
            "name": MOCK_FLUOR.name,
            "spectra": "flat excitation and emission, 300-799 nm (microsim's mock fluorophore)",
            "extinction_coefficient": MOCK_FLUOR.extinction_coefficient,
            "quantum_yield": MOCK_FLUOR.quantum_yield,
        },
        "objective": OBJECTIVE.model_dump(mode="json"),
        "channel": {
            "name": CHANNEL.name,
            "filters": [f.model_dump(mode="json", exclude={"spectrum"}) for f in CHANNEL.filters],
            "psf_wavelength_nm": round(emission_centroid_nm(), 3),
            "note": "microsim renders the confocal excitation PSF at the emission wavelength",
        },
        "modalities": {
            "widefield": Widefield().model_dump(mode="json"),
            "confocal": Confocal(pinhole_au=1.0).model_dump(mode="json"),
            "psf_shape_zyx": [Z_PLANES + 1, side + 1, side + 1],
        },
        "output": {
            "pixel_um": TRUTH_PIXEL_UM * BINNING,
            "binning": BINNING,
            "plane": "central plane of the 3D image, binned, cropped to the central size px",
        },
        "detector": CAMERA.model_dump(mode="json"),
        "photons": {
            "rule": "exposure set per image so that the noise-free 99.9th percentile of the "
            "cropped image is this many photoelectrons (QE included)",
            "widefield": WIDEFIELD_PHOTONS,
            "confocal": CONFOCAL_PHOTONS,
        },
        "settings": Settings(random_seed=OPTICS_SEED, **SETTINGS).model_dump(
            mode="json", exclude={"random_seed"}
        ),
        "optics_seed": OPTICS_SEED,
        "pairs": pairs,
        "mean_median_over_p999": {
            name: float(np.mean([p["median_over_p999"][name] for p in pairs]))
            for name in ("widefield", "confocal")
        },
    }


def run(args: argparse.Namespace) -> None:
    check_out(args.out)
    test = args.out / "test"
    test.mkdir(parents=True, exist_ok=True)
    pairs = []
    for index in range(args.pairs):
        start = time.perf_counter()
        seeds = pair_seeds(args.seed, index)
        truth = render_truth(args.size, seeds["truth_seed"])
        widefield, widefield_ms = render_image(
            truth, Widefield(), args.size, seeds["widefield_noise_seed"], WIDEFIELD_PHOTONS
        )
        confocal, confocal_ms = render_image(
            truth,
            Confocal(pinhole_au=1.0),
            args.size,
            seeds["confocal_noise_seed"],
            CONFOCAL_PHOTONS,
        )
        path = test / f"pair_{index:05d}.tif"
        stack = np.stack([confocal, widefield]).astype(np.float32)
        with atomic(path) as temporary:
            tifffile.imwrite(temporary, stack, metadata={"axes": "CYX"})
        ratios = {"widefield": haze_ratio(widefield), "confocal": haze_ratio(confocal)}
        pairs.append(
            {
                "file": f"test/{path.name}",
                **seeds,
                "exposure_ms": {"widefield": widefield_ms, "confocal": confocal_ms},
                "median_over_p999": ratios,
            }
        )
        print(
            f"{path.name}: {time.perf_counter() - start:.1f} s, median/p99.9 widefield "
            f"{ratios['widefield']:.3f} confocal {ratios['confocal']:.3f}",
            flush=True,
        )
    text = json.dumps(record(args, pairs), indent=2) + "\n"
    with atomic(args.out / "microsim.json") as temporary:
        temporary.write_text(text)


def main(argv: list[str] | None = None) -> int:
    os.environ["MICROSIM_CACHE"] = "0"  # microsim reads it when a PSF is made: no disk cache
    logging.getLogger("microsim").setLevel(logging.WARNING)
    try:
        run(parse_args(argv))
    except PairsError as error:
        print(f"microsim_pairs: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
