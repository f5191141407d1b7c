"""One way to run a model on images, whatever the model is, loaded once per process.

`load_runner` opens a checkpoint (sampled as asked) or a package (which samples as baked in)
as a `Runner`; `cached_runner` keeps one per model file and settings in each process, so the
block path, Dask workers and napari load a model once. `block_source` says whether and how a
model samples large images block by block.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bioimage.reading import channel_names as package_channel_names
from ..bioimage.reading import load_package, recorded_settings
from ..config import SamplingConfig
from ..data.normalization import Normalization
from ..errors import HazeMatchingError, IntensityRangeWarning
from ..fileio import file_stamp
from ..model.checkpoint import PACKAGE_CHECKPOINT
from ..model.trained import load_trained_model
from ..runtime import resolve_device
from .loader import open_model
from .package import package_normalization, run_package
from .planes import Block, sample_planes
from .sampling import build_sampler, method_sampling, tile_evaluations


def output_channel_names(sampling: SamplingConfig) -> list[str]:
    """Names of the output channels, in order."""
    names = ["mmse", "std"]
    if sampling.keep_samples:
        names += [f"sample_{k}" for k in range(sampling.samples)]
    return names


@dataclass(frozen=True)
class Runner:
    """A loaded model ready to dehaze images: the same numbers on every process that loads it.

    `run(planes, on_progress, block)` maps (planes, Y, X) intensities to (planes, C, Y, X)
    outputs with channels `channel_names`, calling `on_progress(n)` as it goes; `block` says
    where the planes lie in a larger image and gives that image's intensity map, None for whole
    images (a package samples whole images only). `normalization` is the model's (a package
    applies it inside; the library needs it for blocks and for `intensity_warning`; None for a
    package that does not record it). `units` names what it counts and `work(planes)` how many
    of them one image takes. `settings` is what `predict.json` records.
    """

    channel_names: list[str]
    settings: dict[str, object]
    units: str
    work: Callable[[np.ndarray], int]
    run: Callable[[np.ndarray, Callable[[int], None], Block | None], np.ndarray]
    normalization: Normalization | None = None


def load_runner(
    model_path: Path, sampling: SamplingConfig | None = None, device: str = "auto"
) -> Runner:
    """Open a checkpoint (sampled with `sampling`, default `SamplingConfig()`) or a package
    (which samples as baked in: `sampling` must be None) for prediction."""
    source = open_model(model_path, "predict", sampling=sampling is not None)
    if source.kind == "package":
        descr = load_package(source.file)
        torch_device = str(resolve_device(device))

        def run_planes(
            planes: np.ndarray, on_progress: Callable[[int], None], block: Block | None
        ) -> np.ndarray:
            if block is not None:
                raise HazeMatchingError(
                    "a package samples whole images only; block-wise prediction needs the "
                    "checkpoint it was exported from",
                    source.file,
                )
            return run_package(descr, planes, torch_device, lambda: on_progress(1))

        return Runner(
            package_channel_names(descr),
            {"package": True},
            "plane",
            len,
            run_planes,
            package_normalization(descr),
        )
    model = load_trained_model(source.file)
    sampling = method_sampling(model.config, sampling or SamplingConfig(), model.calibration)
    sampler = build_sampler(model, sampling, resolve_device(device))

    def checkpoint_planes(
        planes: np.ndarray, on_progress: Callable[[int], None], block: Block | None
    ) -> np.ndarray:
        return sample_planes(model, sampler, planes, on_progress, block).stacked()

    def tiles(planes: np.ndarray) -> int:
        return len(planes) * tile_evaluations(sampler, *planes.shape[-2:])

    return Runner(
        output_channel_names(sampling),
        sampling.model_dump(mode="json"),
        "tile",
        tiles,
        checkpoint_planes,
        model.normalization,
    )


def intensity_warning(runner: Runner, values: np.ndarray, source: Path | str) -> str | None:
    """The guard: a one-line warning naming `source` when its intensities (`values`, the image
    or a sample of its pixels) lie far outside those a dataset-normalised model was trained on,
    also issued as an `IntensityRangeWarning`; None when they do not (or the model works in any
    units)."""
    if runner.normalization is None:
        return None
    message = runner.normalization.range_warning(values)
    if message is None:
        return None
    warning = f"{source}: {message}"
    warnings.warn(warning, IntensityRangeWarning, stacklevel=2)
    return warning


_LOADED: dict[tuple[str, str, str], Runner] = {}  # per process: the runner of each model setting


def cached_runner(model: Path, sampling: SamplingConfig | None, device: str) -> Runner:
    """`load_runner` once per process for each model file and settings (again when the file
    changes): block tasks, Dask workers and the napari widget share it."""
    key = (file_stamp(Path(model)), sampling.model_dump_json() if sampling else "", device)
    if key not in _LOADED:
        _LOADED[key] = load_runner(model, sampling, device)
    return _LOADED[key]


@dataclass(frozen=True)
class BlockSource:
    """What samples a model's large images block by block: a checkpoint at a sampling or, for a
    package that cannot, the reason (`refusal`); such images are then sampled whole, and an
    OME-Zarr image, which cannot be, is refused with it (`require`)."""

    checkpoint: Path | None = None
    sampling: SamplingConfig | None = None
    refusal: str | None = None

    def require(self, model: Path) -> BlockSource:
        """Itself, or the refusal as a one-line error naming `model`."""
        if self.refusal is not None:
            raise HazeMatchingError(self.refusal, model)
        return self


def block_source(model_path: Path, sampling: SamplingConfig | None) -> BlockSource:
    """How `model_path` samples blocks: a checkpoint is itself, a package is the checkpoint it
    ships at the package's recorded sampling settings."""
    source = open_model(model_path, "predict", sampling=sampling is not None)
    if source.kind != "package":
        return BlockSource(source.file, sampling)
    checkpoint = Path(source.path) / PACKAGE_CHECKPOINT
    if not checkpoint.is_file():
        return BlockSource(
            refusal="a package samples whole images only, and this one has no "
            f"{PACKAGE_CHECKPOINT} to sample large images block by block: pass its checkpoint"
        )
    recorded = recorded_settings(load_package(source.path))
    if "sampling" not in recorded:
        return BlockSource(refusal="the package records no sampling settings")
    return BlockSource(checkpoint, SamplingConfig.model_validate(recorded["sampling"]))
