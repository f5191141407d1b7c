"""Building the scripted sampler for a model, and driving it from Python with progress.

`sampler.py` is what packages run; this module is what the host adds around it: the sampler's
settings for a model and a `SamplingConfig`, TorchScript compilation, a driver that reports
progress tile pass by tile pass, and tile counts for progress bars and seam measurements.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..config import SamplingConfig, TrainConfig
from ..errors import CalibrationMismatch, HazeMatchingError
from ..model.calibration import Calibration
from ..model.network import trace_velocity
from ..model.sampler import EulerSampler

if TYPE_CHECKING:
    from ..model.trained import TrainedModel


def method_sampling(
    config: TrainConfig, sampling: SamplingConfig, calibration: Calibration | None = None
) -> SamplingConfig:
    """The sampling settings a model of this method supports, with its default steps filled in.

    Point predictors (the U-Net baseline, the unpaired CycleGAN generator) are trained at t = 0
    only and start without noise: one step and one sample, whatever was asked for. Every other
    method samples as asked; without `steps`, with the steps its std was calibrated at, else as
    many steps as its training time grid has points (the times its network was trained at); a
    calibrated model asked for no number of samples draws as many as it was calibrated with, so
    its calibration holds.
    """
    if config.point_predictor:
        return sampling.model_copy(update={"steps": 1, "samples": 1})
    update: dict[str, int] = {}
    if sampling.steps is None:
        update["steps"] = calibration.steps if calibration is not None else config.time_grid
    calibrated_samples = calibration.samples if calibration is not None else None
    if "samples" not in sampling.model_fields_set and calibrated_samples is not None:
        update["samples"] = calibrated_samples
    return sampling.model_copy(update=update) if update else sampling


def sampler_kwargs(
    config: TrainConfig,
    sampling: SamplingConfig,
    calibration: Calibration | None,
) -> dict[str, object]:
    """Keyword arguments of `EulerSampler` (plain data) for a model and sampling settings.

    The sampler keeps its identity intensity maps: the library normalises outside, and a
    package adds its normalisation's arguments (`export/intensities.py`).
    """
    sampling = method_sampling(config, sampling)
    tile, overlap = sampling.tiling(config.patch_size)
    kwargs: dict[str, object] = {
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
        "head": config.network.mmse_head,
        "start_input": config.start_input,
        "start_noise": config.start_noise,
    }
    return kwargs


class ChannelsLast(nn.Module):
    """The velocity network on channels_last weights and inputs.

    On CPU its convolutions run 1.2x faster than in the default layout at the same results up
    to float rounding (`benchmarks/results/cpu_speed.json`). The wrapped network is a copy, so
    the model's own network (the one packages save) keeps the default layout.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(net).to(memory_format=torch.channels_last)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.net(t, x.contiguous(memory_format=torch.channels_last))


def build_sampler(
    model: TrainedModel,
    sampling: SamplingConfig,
    device: torch.device,
    *,
    calibrated: bool = True,
    channels_last: bool = True,
    intensities: Mapping[str, object] | None = None,
) -> torch.jit.ScriptModule:
    """The scripted sampler around the traced EMA network, on `device`.

    The std is calibrated with the model's stored calibration unless `calibrated` is False
    (which fitting a calibration needs); a `CalibrationMismatch` warning says when the sampling
    differs from the one the calibration was fitted at. On CPU the network runs channels_last
    (faster) unless `channels_last` is False, as for packages, whose sampler stays in the default
    layout that every consumer and the state-dict weights share. `intensities` are sampler
    arguments that put the model's normalisation inside, as packages do
    (`export/intensities.py`); without, it takes and returns network units.
    """
    sampling = method_sampling(model.config, sampling, model.calibration)
    calibration = model.calibration if calibrated else None
    fast = channels_last and device.type == "cpu"
    if calibration is not None:
        reason = calibration.mismatch(sampling.samples, sampling.steps)
        if reason is not None:
            warnings.warn(reason, CalibrationMismatch, stacklevel=2)
    try:
        sampler = EulerSampler(
            trace_velocity(
                ChannelsLast(model.velocity) if fast else model.velocity, model.config.patch_size
            ),
            **sampler_kwargs(model.config, sampling, calibration),
            **(intensities or {}),
        )
    except ValueError as error:
        raise HazeMatchingError(str(error)) from error
    return script_sampler(sampler).to(device)


def script_sampler(sampler: EulerSampler) -> torch.jit.ScriptModule:
    """Compile the sampler with TorchScript (the form consumer tools load).

    torch >= 2.13 flags `torch.jit.script` as deprecated in favour of torch.export, which no
    BioImage.IO consumer loads, so the warning is silenced here on purpose.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*is deprecated")
        return torch.jit.script(sampler)


def run_with_progress(
    sampler: torch.jit.ScriptModule,
    hazy: Tensor,
    on_tiles: Callable[[int], None],
    origin: tuple[int, int] = (0, 0),
) -> Tensor:
    """Exactly `sampler.sample_at(hazy, *origin)` (`sampler(hazy)` at the default origin),
    driven tile pass by tile pass from Python to report progress.

    It calls the sampler's own scripted methods in the order of `EulerSampler.sample_at` and
    `EulerSampler.network_field`, and `on_tiles(n)` after each network pass over n tiles; a
    test checks that the result agrees with the scripted call bit for bit.
    """
    height, width = hazy.shape[-2], hazy.shape[-1]
    in_offset, in_scale, out_offset, out_scale = sampler.intensity_maps(hazy)
    guide = sampler.pad((hazy - in_offset) / in_scale)
    mean = torch.zeros_like(guide)
    m2 = torch.zeros_like(guide)
    head_mean = torch.zeros_like(guide)
    head_m2 = torch.zeros_like(guide)
    kept: list[Tensor] = []
    for first in range(0, sampler.samples, sampler.batch_size):
        count = min(sampler.batch_size, sampler.samples - first)
        x = sampler.initial_state(guide, first, count, origin[0], origin[1])
        cond = guide.repeat(count, 1, 1, 1)
        passes = sampler.tile_passes(x.shape[-2], x.shape[-1], x.shape[0])
        estimate = x
        for step in range(sampler.steps):
            inputs = torch.cat([x, cond], dim=1)
            total, norm = sampler.empty_field(x)
            for group in passes:
                sampler.blend_pass(inputs, step, group, total, norm)
                on_tiles(len(group))
            x, estimate = sampler.advance(x, total / norm, step, estimate)
        mean, m2 = sampler.accumulate(x, first, mean, m2)
        if sampler.head:
            head_mean, head_m2 = sampler.accumulate(estimate, first, head_mean, head_m2)
        if sampler.keep_samples:
            kept.extend(x.split(guide.shape[0]))
    if sampler.head:
        mean = head_mean
    return sampler.summarize(mean, m2, kept, height, width, out_offset, out_scale)


def evaluations_per_image(
    config: TrainConfig, sampling: SamplingConfig, calibration: Calibration | None = None
) -> int:
    """Network evaluations per image (per tile when tiled) of a model sampled this way: one per
    sample and Euler step. An MMSE head costs none: it is read from each sample's first
    evaluation."""
    sampling = method_sampling(config, sampling, calibration)
    return sampling.samples * int(sampling.steps or config.time_grid)


def tile_evaluations(sampler: torch.jit.ScriptModule, height: int, width: int) -> int:
    """Tiles `run_with_progress` reports for one image of this size (all samples and steps)."""
    m = sampler.size_multiple
    padded_h, padded_w = -(-height // m) * m, -(-width // m) * m
    tiles = len(sampler.tile_starts(padded_h)) * len(sampler.tile_starts(padded_w))
    return -(-sampler.samples // sampler.batch_size) * sampler.steps * tiles


def tile_edges(sampler: torch.jit.ScriptModule, size: int) -> list[int]:
    """Positions inside [1, size) where a tile starts or ends along a side of `size` pixels."""
    span = sampler.span()
    return sorted({b for s in sampler.tile_starts(size) for b in (s, s + span) if 0 < b < size})
