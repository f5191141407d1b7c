"""Sampling planes of intensities with a checkpoint's scripted sampler.

The library normalises each plane with the training statistics, runs the sampler (identity
intensity maps) and maps the mean, std and samples back to target intensities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..model.sampler import MMSE_CHANNEL, STD_CHANNEL
from ..model.trained import TrainedModel
from .sampling import run_with_progress


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
    origin: tuple[int, int] = (0, 0),
) -> Prediction:
    """`predict_planes` reporting each network pass over n tiles as `on_tiles(n)`, for planes
    whose top-left pixel lies at `origin` of a larger image (block-wise prediction)."""
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


def no_progress(count: int) -> None:
    """Progress callback for runs that report none (no bar, or blocks counted whole)."""
