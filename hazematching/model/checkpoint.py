"""Checkpoints: tensors and plain data only, written atomically, read with weights_only=True.

A checkpoint holds everything needed to continue training or to predict: the validated training
configuration, the normalisation statistics, the step count, the network, its EMA copy, the
optimizer state and the validation history, plus any state of its method beyond the network
(`extra`: for unpaired training the blur kernel, discriminators and history buffers). Loading
never unpickles code, so opening a checkpoint someone sent you cannot run anything.
"""

from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from .._version import __version__
from ..bioimage.layout import PACKAGE_DESCRIPTION
from ..config import TrainConfig
from ..data.normalization import Normalization, normalization_from
from ..errors import HazeMatchingError
from ..fileio import atomic_path
from .calibration import Calibration

#: Where a package keeps the checkpoint it was exported from (the build script puts it there).
PACKAGE_CHECKPOINT = Path("training") / "best.pt"
FORMAT = "hazematching-checkpoint"
FORMAT_VERSION = 1
BEST = "best.pt"
LAST = "last.pt"


@dataclass(kw_only=True)
class Checkpoint:
    """In-memory form of a checkpoint file (built with keywords only)."""

    config: TrainConfig
    normalization: Normalization
    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    best_val_loss: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "hazematching_version": __version__,
            "torch_version": str(torch.__version__),
            "config": self.config.model_dump(mode="json"),
            "normalization": self.normalization.model_dump(mode="json"),
            "step": self.step,
            "model": self.model,
            "ema": self.ema,
            "optimizer": self.optimizer,
            "best_val_loss": self.best_val_loss,
            "history": self.history,
            "data": self.data,
            "calibration": self.calibration.model_dump(mode="json") if self.calibration else None,
            "extra": self.extra,
        }


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically: an interrupted save leaves the previous file intact."""
    with atomic_path(Path(path)) as tmp:
        torch.save(checkpoint.to_dict(), tmp)


def resolve_checkpoint_path(path: Path) -> Path:
    """A checkpoint file, or the best checkpoint inside a run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST
    if not path.is_file():
        raise HazeMatchingError("checkpoint not found", path)
    return path


def load_model_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint of a model: a checkpoint file, a run folder, or a package (folder or
    zip) that ships the checkpoint it was exported from (`PACKAGE_CHECKPOINT`)."""
    path = Path(path)
    if path.is_dir() and (path / PACKAGE_DESCRIPTION).is_file():
        if not (path / PACKAGE_CHECKPOINT).is_file():
            raise HazeMatchingError(f"is a package without its {PACKAGE_CHECKPOINT}", path)
        return load_checkpoint(path / PACKAGE_CHECKPOINT)
    if path.is_file() and _zipped_package(path):
        with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
            if PACKAGE_CHECKPOINT.as_posix() not in archive.namelist():
                raise HazeMatchingError(f"is a package without its {PACKAGE_CHECKPOINT}", path)
            inside = Path(archive.extract(PACKAGE_CHECKPOINT.as_posix(), tmp))
            try:
                return load_checkpoint(inside)
            except HazeMatchingError as error:
                raise HazeMatchingError(f"{PACKAGE_CHECKPOINT}: {error.message}", path) from error
    return load_checkpoint(path)


def _zipped_package(path: Path) -> bool:
    """A zip with the package description at its root (a checkpoint is a zip too, without
    one)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return PACKAGE_DESCRIPTION in archive.namelist()


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and validate a checkpoint (file or run folder); clear errors for anything else."""
    path = resolve_checkpoint_path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt zip, foreign pickle, truncated file ...
        raise HazeMatchingError(
            f"not a readable checkpoint ({type(error).__name__})", path
        ) from error
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise HazeMatchingError("not a HazeMatching checkpoint", path)
    if raw.get("format_version") != FORMAT_VERSION:
        raise HazeMatchingError(
            f"checkpoint format {raw.get('format_version')} is not supported "
            f"(this version reads {FORMAT_VERSION})",
            path,
        )
    try:
        normalization = normalization_from(raw["normalization"])
        # configs written before the choice existed trained with the mode stored beside them
        config = {"normalization": normalization.mode, **raw["config"]}
        return Checkpoint(
            config=TrainConfig.model_validate(config),
            normalization=normalization,
            step=int(raw["step"]),
            model=raw["model"],
            ema=raw["ema"],
            optimizer=raw["optimizer"],
            best_val_loss=raw.get("best_val_loss"),
            history=list(raw.get("history", [])),
            data=dict(raw.get("data", {})),
            calibration=(
                Calibration.model_validate(raw["calibration"]) if raw.get("calibration") else None
            ),
            extra=dict(raw.get("extra", {})),
        )
    except (KeyError, ValidationError, TypeError, ValueError) as error:
        raise HazeMatchingError(f"incomplete or invalid checkpoint ({error})", path) from error
