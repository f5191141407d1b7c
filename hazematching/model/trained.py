"""A checkpoint's EMA network ready to sample: what training hands on and inference loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..config import TrainConfig
from ..data.normalization import Normalization
from ..errors import HazeMatchingError
from .calibration import Calibration
from .checkpoint import Checkpoint, load_checkpoint, resolve_checkpoint_path
from .network import build_velocity_net


@dataclass(frozen=True)
class TrainedModel:
    """What sampling needs from a checkpoint: architecture, statistics and EMA weights."""

    config: TrainConfig
    normalization: Normalization
    velocity: nn.Module
    source: Path
    calibration: Calibration | None = None


def load_trained_model(path: Path | str) -> TrainedModel:
    """The EMA network of a checkpoint file (or of run_dir/best.pt), in eval mode on CPU."""
    file = resolve_checkpoint_path(Path(path))
    return trained_model_from(load_checkpoint(file), file)


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
