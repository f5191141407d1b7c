"""Sampling planes of intensities with a checkpoint's scripted sampler.

The library maps each plane to network units with its model's normalisation (the
`IntensityMap` of the whole plane, or for a block of a larger image the whole image's map),
runs the sampler (identity intensity maps) and maps the mean, std and samples back with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.normalization import IntensityMap
from ..model.sampler import MMSE_CHANNEL, STD_CHANNEL
from ..model.trained import TrainedModel
from .sampling import run_with_progress


@dataclass(frozen=True)
class Block:
    """Planes that are a block of a larger image: where their top-left pixel lies in it, and
    the intensity map of the whole image (computed once for all its blocks)."""

    origin: tuple[int, int]
    intensities: IntensityMap


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
    return sample_planes(model, sampler, planes, bar.update if bar is not None else no_progress)


def sample_planes(
    model: TrainedModel,
    sampler: torch.jit.ScriptModule,
    planes: np.ndarray,
    on_tiles: Callable[[int], None],
    block: Block | None = None,
) -> Prediction:
    """`predict_planes` reporting each network pass over n tiles as `on_tiles(n)`; with
    `block`, the planes are a block of a larger image (block-wise prediction)."""
    device = next(sampler.parameters()).device
    origin = block.origin if block is not None else (0, 0)
    outputs = []
    with torch.no_grad():
        for plane in planes:
            intensities = (
                block.intensities if block is not None else model.normalization.intensity_map(plane)
            )
            hazy = torch.from_numpy(intensities.normalize_input(plane))[None, None]
            result = run_with_progress(sampler, hazy.to(device), on_tiles, origin)
            out = result[0].cpu().numpy()  # (channels, Y, X), network units
            values = intensities.denormalize_target(out)  # mean and samples
            values[STD_CHANNEL] = intensities.denormalize_target(out[STD_CHANNEL], is_std=True)
            outputs.append(values)
    stacked = np.stack(outputs)  # (planes, channels, Y, X), target intensities
    return Prediction(
        mmse=stacked[:, MMSE_CHANNEL],
        std=stacked[:, STD_CHANNEL],
        samples=stacked[:, 2:] if stacked.shape[1] > 2 else None,
    )


def no_progress(count: int) -> None:
    """Progress callback for runs that report none (no bar, or blocks counted whole)."""
