"""Dehazing images with a trained checkpoint: posterior samples, MMSE and uncertainty.

The checkpoint's EMA network is traced and wrapped in the scripted `EulerSampler`, the module the
exported package contains. Intensities are normalised with the training statistics before
sampling and mapped back to target intensities afterwards (a package does both inside).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..bioimage.reading import channel_names as package_channel_names
from ..bioimage.reading import load_package
from ..config import BlockConfig, SamplingConfig
from ..data.omezarr import ZarrImage, is_ome_zarr, read_ome_zarr
from ..data.tiff import read_single, write_tiff
from ..errors import HazeMatchingError
from ..fileio import output_folder, write_json
from ..plots import image_row
from ..runtime import resolve_device
from .bundled import bundled_model
from .loader import TrainedModel, load_trained_model, open_model
from .package import run_package
from .sampler import MMSE_CHANNEL, STD_CHANNEL
from .sampling import build_sampler, method_sampling, run_with_progress, tile_evaluations


@dataclass(frozen=True)
class Prediction:
    """Results in target intensities: arrays of shape (planes, Y, X); samples (planes, K, Y, X)."""

    mmse: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None

    def stacked(self) -> np.ndarray:
        """(planes, C, Y, X) with channels mmse, std [, samples]: the layout of output files."""
        channels = [self.mmse[:, None], self.std[:, None]]
        if self.samples is not None:
            channels.append(self.samples)
        return np.concatenate(channels, axis=1)


def predict_planes(
    model: TrainedModel,
    sampler: torch.jit.ScriptModule,
    planes: np.ndarray,
    bar: tqdm | None = None,
) -> Prediction:
    """Sample every plane of a (planes, Y, X) intensity array, one plane at a time."""
    return _predict_planes(model, sampler, planes, bar.update if bar is not None else _ignore)


def _predict_planes(
    model: TrainedModel,
    sampler: torch.jit.ScriptModule,
    planes: np.ndarray,
    on_tiles: Callable[[int], None],
    origin: tuple[int, int] = (0, 0),
) -> Prediction:
    device = next(sampler.parameters()).device
    outputs = []
    with torch.no_grad():
        for plane in planes:
            hazy = torch.from_numpy(model.normalization.normalize_input(plane))[None, None]
            result = run_with_progress(sampler, hazy.to(device), on_tiles, origin)
            outputs.append(result[0].cpu().numpy())
    stacked = np.stack(outputs)  # (planes, channels, Y, X), normalised units
    norm = model.normalization
    samples = stacked[:, 2:] if stacked.shape[1] > 2 else None
    return Prediction(
        mmse=norm.denormalize_target(stacked[:, MMSE_CHANNEL]),
        std=norm.denormalize_target(stacked[:, STD_CHANNEL], is_std=True),
        samples=norm.denormalize_target(samples) if samples is not None else None,
    )


def _ignore(tiles: int) -> None:
    """Progress callback for runs without a bar."""


def output_channel_names(sampling: SamplingConfig) -> list[str]:
    """Names of the output channels, in order."""
    names = ["mmse", "std"]
    if sampling.keep_samples:
        names += [f"sample_{k}" for k in range(sampling.samples)]
    return names


IMAGE_SUFFIXES = {".tif", ".tiff", ".zarr"}
PREVIEW_SAMPLES = 2


def split_model_argument(paths: list[Path]) -> tuple[Path, list[Path]]:
    """`[MODEL] IMAGES...` -> (model, images); without a model (an image first: a TIFF or an
    OME-Zarr store), the bundled one."""
    if not paths:
        raise HazeMatchingError("no input images given")
    if Path(paths[0]).suffix.lower() in IMAGE_SUFFIXES:
        return bundled_model(), list(paths)
    return Path(paths[0]), list(paths[1:])


def write_result(
    out_dir: Path, name: str, image: np.ndarray, stack: np.ndarray, names: list[str]
) -> Path:
    """Write `<name>.tif` (CYX for one plane, ZCYX for a stack) and the preview `<name>.png`.

    The preview shows the middle plane: input | MMSE | std | the first samples when kept.
    """
    path = out_dir / f"{name}.tif"
    if stack.shape[0] == 1:
        write_tiff(path, stack[0], "CYX", names)
    else:
        write_tiff(path, stack, "ZCYX", names)
    middle = stack.shape[0] // 2
    shown = [(n, stack[middle, c]) for c, n in enumerate(names)][: 2 + PREVIEW_SAMPLES]
    image_row(out_dir / f"{name}.png", [("input", image[middle]), *shown])
    return path


@dataclass(frozen=True)
class Runner:
    """A loaded model ready to dehaze images: the same numbers on every process that loads it.

    `run(planes, on_progress, origin)` maps (planes, Y, X) intensities to (planes, C, Y, X)
    outputs with channels `channel_names`, calling `on_progress(n)` as it goes; `origin` is where
    the planes' top-left pixel lies in a larger image, (0, 0) for whole images (a package
    samples whole images only). `units` names what it counts and `work(planes)` how many of them
    one image takes. `settings` is what `predict.json` records.
    """

    channel_names: list[str]
    settings: dict[str, object]
    units: str
    work: Callable[[np.ndarray], int]
    run: Callable[[np.ndarray, Callable[[int], None], tuple[int, int]], np.ndarray]


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
            planes: np.ndarray, on_progress: Callable[[int], None], origin: tuple[int, int]
        ) -> np.ndarray:
            if origin != (0, 0):
                raise HazeMatchingError(
                    "a package samples whole images only; block-wise prediction needs the "
                    "checkpoint it was exported from",
                    source.file,
                )
            return run_package(descr, planes, torch_device, lambda: on_progress(1))

        return Runner(package_channel_names(descr), {"package": True}, "plane", len, run_planes)
    model = load_trained_model(source.file)
    sampling = method_sampling(model.config, sampling or SamplingConfig(), model.calibration)
    sampler = build_sampler(model, sampling, resolve_device(device))

    def sample_planes(
        planes: np.ndarray, on_progress: Callable[[int], None], origin: tuple[int, int]
    ) -> np.ndarray:
        return _predict_planes(model, sampler, planes, on_progress, origin).stacked()

    def tiles(planes: np.ndarray) -> int:
        return len(planes) * tile_evaluations(sampler, *planes.shape[-2:])

    return Runner(
        output_channel_names(sampling),
        sampling.model_dump(mode="json"),
        "tile",
        tiles,
        sample_planes,
    )


def predict_image(
    runner: Runner,
    image: np.ndarray,
    name: str,
    out_dir: Path,
    on_progress: Callable[[int], None] | None = None,
) -> Path:
    """Dehaze one (planes, Y, X) image into `<out_dir>/<name>.tif` and its `.png` preview."""
    stack = runner.run(image, on_progress or _ignore, (0, 0))
    return write_result(out_dir, name, image, stack, runner.channel_names)


def input_name(path: Path) -> str:
    """The name outputs of an input get: a TIFF's stem, an OME-Zarr store's name without
    `.zarr` and `.ome`."""
    path = Path(path)
    if path.suffix.lower() != ".zarr":
        return path.stem
    name = path.stem
    return name[: -len(".ome")] if name.lower().endswith(".ome") else name


def read_input(path: Path, channel: int | None) -> np.ndarray | ZarrImage:
    """A TIFF as float32 (planes, Y, X), or an OME-Zarr image opened lazily."""
    if is_ome_zarr(path):
        if channel is not None:
            raise HazeMatchingError("--channel selects a channel of TIFFs only", path)
        return read_ome_zarr(path)
    return read_single(path, channel)


def check_input_names(inputs: list[Path]) -> list[str]:
    """Output names of the inputs; refused when two would overwrite each other."""
    if not inputs:
        raise HazeMatchingError("no input images given")
    names = [input_name(p) for p in inputs]
    if len(set(names)) != len(names):
        raise HazeMatchingError("two inputs share a file name; outputs would overwrite each other")
    return names


def predict_record(
    model_path: Path,
    runner: Runner | None,
    device: str,
    channel: int | None,
    inputs: list[Path],
    outputs: list[str],
) -> dict[str, object]:
    """The content of `predict.json`: the model, settings, inputs and outputs of a run
    (`runner` None: the settings are those of the outputs' own records)."""
    return {
        "hazematching_version": __version__,
        "model": str(model_path),
        "sampling": runner.settings if runner else None,
        "device": device,
        "channel": channel,
        "inputs": [str(p) for p in inputs],
        "outputs": outputs,
        "output_channels": runner.channel_names if runner else None,
    }


def predict(
    model_path: Path,
    inputs: list[Path],
    out_dir: Path,
    sampling: SamplingConfig | None = None,
    *,
    channel: int | None = None,
    device: str = "auto",
    progress: bool = True,
    blocks: BlockConfig | None = None,
) -> list[Path]:
    """Dehaze each input: `<out_dir>/<name>.tif` with channels mmse, std [, samples].

    Next to each TIFF, `<name>.png` previews input | MMSE | std (| samples).

    `model_path` is a checkpoint (or run folder), sampled with `sampling` (default
    `SamplingConfig()`), or an exported model package (.zip or unpacked folder), which runs
    through bioimageio.core with the sampling settings baked into it (`sampling` must be None).
    2D inputs give (C, Y, X) outputs, stacks give (Z, C, Y, X). `channel` selects one channel of
    multi-channel inputs (e.g. 1 for the widefield channel of a paired file). Large images
    (OME-Zarr stores, which give `<name>.ome.zarr`, and TIFF planes above `blocks.above` px)
    are sampled block by block as `blocks` says (`inference/blockwise.py`). All inputs are read
    (OME-Zarr lazily) and checked before anything is computed or written; `predict.json`
    records the model and the settings.
    """
    from .blockwise import (
        InProcess,
        block_count,
        blocks_record,
        blockwise_model,
        is_large,
        predict_large,
    )

    blocks = blocks or BlockConfig()
    names = check_input_names(inputs)
    open_model(model_path, "predict", sampling=sampling is not None)  # a missing model first
    images = [read_input(Path(p), channel) for p in inputs]
    large = [is_large(image, blocks) for image in images]
    block_model = None  # the checkpoint and sampling of the block path, resolved once
    if any(large):
        try:
            block_model = blockwise_model(model_path, sampling)
        except HazeMatchingError:
            if any(isinstance(image, ZarrImage) for image in images):
                raise  # refused before anything is written
            large = [False] * len(images)  # a package without its checkpoint samples them whole
    runner = load_runner(model_path, sampling, device) if not all(large) else None
    out_dir = Path(out_dir)
    output_folder(out_dir)
    written = []
    small = [i for i, big in enumerate(large) if not big]
    if runner is not None:
        total = sum(runner.work(images[i]) for i in small)
        with tqdm(total=total, desc="predict", unit=runner.units, disable=not progress) as bar:
            for i in small:
                bar.set_postfix(image=Path(inputs[i]).name)
                written.append(predict_image(runner, images[i], names[i], out_dir, bar.update))
    for i in (i for i, big in enumerate(large) if big):
        with tqdm(
            total=block_count(images[i], blocks),
            desc=f"predict {Path(inputs[i]).name}",
            unit="block",
            disable=not progress,
        ) as bar:
            written.append(
                predict_large(
                    InProcess(),
                    *block_model,
                    device,
                    blocks,
                    Path(inputs[i]),
                    images[i],
                    names[i],
                    out_dir,
                    bar.update,
                )
            )
    record = predict_record(model_path, runner, device, channel, inputs, [p.name for p in written])
    if block_model is not None:  # resolved only when some image took the block path
        record["blocks"] = blocks_record(blocks, *block_model, device)
    write_json(out_dir / "predict.json", record)
    return written
