"""Dehazing images with a trained checkpoint: posterior samples, MMSE and uncertainty.

The checkpoint's EMA network is traced and wrapped in the scripted `EulerSampler`, the very module
the exported package contains. Intensities are normalised with the training statistics before
sampling and mapped back to target intensities afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..bioimage.reading import channel_names as package_channel_names
from ..bioimage.reading import load_package
from ..config import SamplingConfig
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
    device = next(sampler.parameters()).device
    outputs = []
    with torch.no_grad():
        for plane in planes:
            hazy = torch.from_numpy(model.normalization.normalize_input(plane))[None, None]
            result = run_with_progress(
                sampler, hazy.to(device), bar.update if bar is not None else _ignore
            )
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


IMAGE_SUFFIXES = {".tif", ".tiff"}
PREVIEW_SAMPLES = 2


def split_model_argument(paths: list[Path]) -> tuple[Path, list[Path]]:
    """`[MODEL] IMAGES...` -> (model, images); without a model (a TIFF first), the bundled one."""
    if not paths:
        raise HazeMatchingError("no input images given")
    if Path(paths[0]).suffix.lower() in IMAGE_SUFFIXES:
        return bundled_model(), list(paths)
    return Path(paths[0]), list(paths[1:])


def _write_result(
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


def predict(
    model_path: Path,
    inputs: list[Path],
    out_dir: Path,
    sampling: SamplingConfig | None = None,
    *,
    channel: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Dehaze each input TIFF: `<out_dir>/<name>.tif` with channels mmse, std [, samples].

    Next to each TIFF, `<name>.png` previews input | MMSE | std (| samples).

    `model_path` is a checkpoint (or run folder), sampled with `sampling` (default
    `SamplingConfig()`), or an exported model package (.zip or unpacked folder), which runs
    through bioimageio.core with the sampling settings baked into it (`sampling` must be None).
    2D inputs give (C, Y, X) outputs, stacks give (Z, C, Y, X). `channel` selects one channel of
    multi-channel inputs (e.g. 1 for the widefield channel of a paired file). All inputs are
    read and checked before anything is computed or written; `predict.json` records the model
    and the settings.
    """
    if not inputs:
        raise HazeMatchingError("no input images given")
    source = open_model(model_path, "predict", sampling=sampling is not None)
    out_dir = Path(out_dir)
    names = [Path(p).stem for p in inputs]
    if len(set(names)) != len(names):
        raise HazeMatchingError("two inputs share a file name; outputs would overwrite each other")
    images = [read_single(Path(p), channel) for p in inputs]
    planes = sum(len(image) for image in images)
    written = []
    if source.kind == "package":
        descr = load_package(source.file)
        channel_names = package_channel_names(descr)
        torch_device = str(resolve_device(device))
        output_folder(out_dir)
        with tqdm(total=planes, desc="predict", unit="plane", disable=not progress) as bar:
            for name, image in zip(names, images, strict=True):
                stack = run_package(descr, image, torch_device, lambda: bar.update(1))
                written.append(_write_result(out_dir, name, image, stack, channel_names))
        settings: dict[str, object] = {"package": True}
    else:
        model = load_trained_model(source.file)
        sampling = method_sampling(model.config, sampling or SamplingConfig(), model.calibration)
        sampler = build_sampler(model, sampling, resolve_device(device))
        channel_names = output_channel_names(sampling)
        output_folder(out_dir)
        total = sum(len(image) * tile_evaluations(sampler, *image.shape[-2:]) for image in images)
        with tqdm(total=total, desc="predict", unit="tile", disable=not progress) as bar:
            for path, name, image in zip(inputs, names, images, strict=True):
                bar.set_postfix(image=Path(path).name)
                result = predict_planes(model, sampler, image, bar)
                written.append(_write_result(out_dir, name, image, result.stacked(), channel_names))
        settings = sampling.model_dump(mode="json")
    write_json(
        out_dir / "predict.json",
        {
            "hazematching_version": __version__,
            "model": str(model_path),
            "sampling": settings,
            "device": device,
            "channel": channel,
            "inputs": [str(p) for p in inputs],
            "outputs": [p.name for p in written],
            "output_channels": channel_names,
        },
    )
    return written
