"""Dehazing images with a trained checkpoint: posterior samples, MMSE and uncertainty.

The checkpoint's EMA network is traced and wrapped in the scripted `EulerSampler`, the very module
the exported package contains. Intensities are normalised with the training statistics before
sampling and mapped back to target intensities afterwards.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import __version__
from .calibration import Calibration
from .checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint_path
from .config import SamplingConfig, TrainConfig
from .data.normalization import Normalization
from .data.tiff import read_single, write_tiff
from .errors import CalibrationMismatch, HazeMatchingError
from .export.runner import channel_names as package_channel_names
from .export.runner import is_package, load_package, run_package
from .fileio import write_json
from .model import build_velocity_net, trace_velocity
from .plots import image_row
from .runtime import resolve_device
from .sampling import (
    MMSE_CHANNEL,
    STD_CHANNEL,
    EulerSampler,
    run_with_progress,
    script_sampler,
    tile_evaluations,
)


@dataclass(frozen=True)
class TrainedModel:
    """What prediction needs from a checkpoint: architecture, statistics and EMA weights."""

    config: TrainConfig
    normalization: Normalization
    velocity: nn.Module
    source: Path
    calibration: Calibration | None = None


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


def load_trained_model(path: Path) -> TrainedModel:
    """The EMA network of a checkpoint file (or of run_dir/best.pt), in eval mode on CPU."""
    return trained_model_from(load_checkpoint(path), resolve_checkpoint_path(path))


def trained_model_from(checkpoint: Checkpoint, source: Path) -> TrainedModel:
    """The EMA network of an already loaded checkpoint (read from `source`)."""
    net = build_velocity_net(checkpoint.config.network, checkpoint.config.patch_size)
    try:
        net.load_state_dict(checkpoint.ema)
    except RuntimeError as error:
        raise HazeMatchingError("weights do not match the stored architecture", source) from error
    return TrainedModel(
        checkpoint.config, checkpoint.normalization, net.eval(), source, checkpoint.calibration
    )


def method_sampling(config: TrainConfig, sampling: SamplingConfig) -> SamplingConfig:
    """The sampling settings a model of this method supports.

    The U-Net baseline is trained at t = 0 only and starts without noise: one step and one
    sample, whatever was asked for. Every other method samples as asked.
    """
    if config.method == "unet":
        return sampling.model_copy(update={"steps": 1, "samples": 1})
    return sampling


def sampler_kwargs(
    config: TrainConfig, sampling: SamplingConfig, calibration: Calibration | None
) -> dict[str, object]:
    """Keyword arguments of `EulerSampler` (plain data) for a model and sampling settings."""
    sampling = method_sampling(config, sampling)
    tile, overlap = sampling.tiling(config.patch_size)
    return {
        "steps": sampling.steps,
        "samples": sampling.samples,
        "seed": sampling.seed,
        "batch_size": sampling.batch_size,
        "size_multiple": config.network.size_multiple,
        "tile": tile,
        "overlap": overlap,
        "std_scale": calibration.std_scale if calibration else 1.0,
        "std_offset": calibration.std_offset if calibration else 0.0,
        "keep_samples": sampling.keep_samples,
        "start_input": config.start_input,
        "start_noise": config.start_noise,
    }


def build_sampler(
    model: TrainedModel, sampling: SamplingConfig, device: torch.device, *, calibrated: bool = True
) -> torch.jit.ScriptModule:
    """The scripted sampler around the traced EMA network, on `device`.

    The std is calibrated with the model's stored calibration unless `calibrated` is False
    (which fitting a calibration needs); a `CalibrationMismatch` warning says when the sampling
    differs from the one the calibration was fitted at.
    """
    calibration = model.calibration if calibrated else None
    if calibration is not None:
        reason = calibration.mismatch(sampling.samples, sampling.steps)
        if reason is not None:
            warnings.warn(reason, CalibrationMismatch, stacklevel=2)
    try:
        sampler = EulerSampler(
            trace_velocity(model.velocity, model.config.patch_size),
            **sampler_kwargs(model.config, sampling, calibration),
        )
    except ValueError as error:
        raise HazeMatchingError(str(error)) from error
    return script_sampler(sampler).to(device)


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


DEFAULT_MODEL = "hazematching-simulated"
MODEL_ZOO = Path(__file__).resolve().parents[1] / "model_zoo"
IMAGE_SUFFIXES = {".tif", ".tiff"}
PREVIEW_SAMPLES = 2


def bundled_model() -> Path:
    """The default model shipped in the repository's model_zoo/ folder."""
    path = MODEL_ZOO / DEFAULT_MODEL
    if not (path.is_dir() and is_package(path)):
        raise HazeMatchingError(
            "the bundled model is missing (it ships with a clone of the repository): "
            "pass a model as the first argument",
            path,
        )
    return path


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
    out_dir = Path(out_dir)
    names = [Path(p).stem for p in inputs]
    if len(set(names)) != len(names):
        raise HazeMatchingError("two inputs share a file name; outputs would overwrite each other")
    images = [read_single(Path(p), channel) for p in inputs]
    planes = sum(len(image) for image in images)
    written = []
    if is_package(model_path):
        if sampling is not None:
            raise HazeMatchingError(
                "sampling settings are baked into a package; re-export it to change them",
                model_path,
            )
        descr = load_package(model_path)
        channel_names = package_channel_names(descr)
        torch_device = str(resolve_device(device))
        out_dir.mkdir(parents=True, exist_ok=True)
        with tqdm(total=planes, desc="predict", unit="plane", disable=not progress) as bar:
            for name, image in zip(names, images, strict=True):
                stack = run_package(descr, image, torch_device, lambda: bar.update(1))
                written.append(_write_result(out_dir, name, image, stack, channel_names))
        settings: dict[str, object] = {"package": True}
    else:
        model = load_trained_model(model_path)
        sampling = method_sampling(model.config, sampling or SamplingConfig())
        sampler = build_sampler(model, sampling, resolve_device(device))
        channel_names = output_channel_names(sampling)
        out_dir.mkdir(parents=True, exist_ok=True)
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
