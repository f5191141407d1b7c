"""Dehazing images with a trained checkpoint: posterior samples, MMSE and uncertainty.

The checkpoint's EMA network is traced and wrapped in the scripted `EulerSampler`, the module the
exported package contains. Intensities are normalised with the training statistics before
sampling and mapped back to target intensities afterwards (a package does both inside).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._version import __version__
from ..config import BlockConfig, OutputFormat, SamplingConfig
from ..data.inputs import input_name, is_image_path, read_input
from ..data.metadata import ImageMetadata
from ..data.omezarr import ZarrImage
from ..errors import HazeMatchingError
from ..fileio import output_folder, write_json
from .blockwise import (
    InProcess,
    block_count,
    block_runner,
    blocks_record,
    intensity_sample,
    is_large,
    predict_large,
)
from .bundled import bundled_model
from .loader import open_model
from .planes import no_progress
from .results import write_result
from .runner import Runner, block_source, intensity_warning, load_runner


def split_model_argument(paths: list[Path]) -> tuple[Path, list[Path]]:
    """`[MODEL] IMAGES...` -> (model, images); without a model (an image first: a TIFF, a
    microscope file or an OME-Zarr store), the bundled one."""
    if not paths:
        raise HazeMatchingError("no input images given")
    if is_image_path(Path(paths[0])):
        return bundled_model(), list(paths)
    return Path(paths[0]), list(paths[1:])


def predict_image(
    runner: Runner,
    image: np.ndarray,
    name: str,
    out_dir: Path,
    on_progress: Callable[[int], None] | None = None,
    metadata: ImageMetadata | None = None,
    output_format: OutputFormat = OutputFormat.TIFF,
) -> Path:
    """Dehaze one (planes, Y, X) image into `<out_dir>/<name>.tif` (or `.ome.tif`) with the
    input's `metadata`, and its `.png` preview."""
    stack = runner.run(image, on_progress or no_progress, None)
    return write_result(out_dir, name, image, stack, runner.channel_names, metadata, output_format)


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
    channel: int | str | None,
    inputs: list[Path],
    outputs: list[str],
    scene: int | str | None = None,
) -> dict[str, object]:
    """The content of `predict.json`: the model, settings, inputs and outputs of a run
    (`runner` None: the settings are those of the outputs' own records)."""
    return {
        "hazematching_version": __version__,
        "model": str(model_path),
        "sampling": runner.settings if runner else None,
        "device": device,
        "channel": channel,
        "scene": scene,
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
    channel: int | str | None = None,
    scene: int | str | None = None,
    output_format: OutputFormat = OutputFormat.TIFF,
    device: str = "auto",
    progress: bool = True,
    blocks: BlockConfig | None = None,
) -> list[Path]:
    """Dehaze each input: `<out_dir>/<name>.tif` with channels mmse, std [, samples].

    Next to each TIFF, `<name>.png` previews input | MMSE | std (| samples).

    `model_path` is a checkpoint (or run folder), sampled with `sampling` (default
    `SamplingConfig()`), or an exported model package (.zip or unpacked folder), which runs
    through bioimageio.core with the sampling settings baked into it (`sampling` must be None).
    2D inputs give (C, Y, X) outputs, stacks give (Z, C, Y, X) or (T, C, Y, X). Inputs are
    TIFFs, microscope files (CZI, ND2, LIF, OME-TIFF: the `formats` extra) or OME-Zarr stores;
    `channel` (index or name) selects one channel of multi-channel inputs (e.g. 1 for the
    widefield channel of a paired file), `scene` one scene of multi-scene files. Outputs carry
    the input's pixel size and z-spacing, as ImageJ TIFFs or, with `output_format`, OME-TIFFs.
    Large images
    (OME-Zarr stores, which give `<name>.ome.zarr`, and TIFF planes above `blocks.above` px)
    are sampled block by block as `blocks` says (`inference/blockwise.py`). All inputs are read
    (OME-Zarr lazily) and checked before anything is computed or written; `predict.json`
    records the model and the settings.
    """
    blocks = blocks or BlockConfig()
    names = check_input_names(inputs)
    open_model(model_path, "predict", sampling=sampling is not None)  # a missing model first
    images, metadata = zip(*(read_input(Path(p), channel, scene) for p in inputs), strict=True)
    large = [is_large(image, blocks) for image in images]
    block_model = block_source(model_path, sampling) if any(large) else None  # resolved once
    if block_model is not None and block_model.refusal is not None:
        if any(isinstance(image, ZarrImage) for image in images):
            block_model.require(model_path)  # refused before anything is written
        large, block_model = [False] * len(images), None  # large TIFFs are sampled whole
    runner = load_runner(model_path, sampling, device) if not all(large) else None
    out_dir = Path(out_dir)
    output_folder(out_dir)
    written, cautions = [], []
    small = [i for i, big in enumerate(large) if not big]
    if runner is not None:
        total = sum(runner.work(images[i]) for i in small)
        with tqdm(total=total, desc="predict", unit=runner.units, disable=not progress) as bar:
            for i in small:
                bar.set_postfix(image=Path(inputs[i]).name)
                cautions.append(intensity_warning(runner, images[i], inputs[i]))
                written.append(
                    predict_image(
                        runner,
                        images[i],
                        names[i],
                        out_dir,
                        bar.update,
                        metadata[i],
                        output_format,
                    )
                )
    for i in (i for i, big in enumerate(large) if big):
        guard = block_runner(block_model, device)
        cautions.append(intensity_warning(guard, intensity_sample(images[i]), inputs[i]))
        with tqdm(
            total=block_count(images[i], blocks),
            desc=f"predict {Path(inputs[i]).name}",
            unit="block",
            disable=not progress,
        ) as bar:
            written.append(
                predict_large(
                    InProcess(),
                    block_model,
                    images[i],
                    source=Path(inputs[i]),
                    name=names[i],
                    out_dir=out_dir,
                    metadata=metadata[i],
                    output_format=output_format,
                    config=blocks,
                    device=device,
                    on_block=bar.update,
                )
            )
    outputs = [p.name for p in written]
    record = predict_record(model_path, runner, device, channel, inputs, outputs, scene)
    record["input_metadata"] = [m.record() for m in metadata]
    record["warnings"] = [caution for caution in cautions if caution is not None]
    if block_model is not None:  # resolved only when some image took the block path
        record["blocks"] = blocks_record(blocks, block_model, device)
    write_json(out_dir / "predict.json", record)
    return written
