"""The one place that decides what kind of model a path is, and what each kind cannot do.

A model path is a checkpoint (a `.pt` file or a run folder holding `best.pt`), an exported
BioImage.IO package (a `.zip` or an unpacked folder with `rdf.yaml`) or a Richardson-Lucy model
(`richardson_lucy.pt` or a folder holding it). Every command that takes a model (`predict`,
`calibrate`, `evaluate`, `export`) opens it with `open_model`, so the decision is made once and a
kind that cannot serve a use gets the same one-line error from every command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..bioimage.layout import is_package
from ..errors import HazeMatchingError
from ..model.checkpoint import BEST, resolve_checkpoint_path
from ..model.richardson_lucy import MODEL_FILE as RICHARDSON_LUCY_FILE
from ..model.richardson_lucy import is_richardson_lucy

ModelKind = Literal["checkpoint", "package", "richardson-lucy"]
Use = Literal["predict", "calibrate", "evaluate", "export", "sampling options"]

# What each kind cannot do, said the same way by every command.
REFUSALS: dict[tuple[ModelKind, Use], str] = {
    ("package", "sampling options"): "sampling settings are baked into a package; re-export "
    "its checkpoint to change them",
    ("package", "calibrate"): "a package cannot be recalibrated; calibrate its checkpoint, then "
    "export it again",
    ("package", "export"): "is already a package; export the checkpoint it was made from",
    ("richardson-lucy", "sampling options"): "Richardson-Lucy is deterministic and takes no "
    "sampling options",
    ("richardson-lucy", "calibrate"): "Richardson-Lucy has no std to calibrate",
    ("richardson-lucy", "predict"): "Richardson-Lucy models are for `evaluate` and `export`; "
    "export one and predict with the package",
}


@dataclass(frozen=True)
class ModelSource:
    """A model path and what it is: `file` is the checkpoint, RL model or package itself."""

    kind: ModelKind
    path: Path
    file: Path


def model_file(path: Path | str) -> Path:
    """The file that identifies a model: itself, or the checkpoint / RL model inside a folder.

    Works on paths that no longer exist (as recorded in reports): they stand for themselves.
    """
    path = Path(path).resolve()
    if path.is_dir():
        for inside in (path / BEST, path / RICHARDSON_LUCY_FILE):
            if inside.is_file():
                return inside
    return path


def locate_model(path: Path | str) -> ModelSource:
    """Decide what kind of model `path` is; a one-line error if it is none."""
    path = Path(path)
    if not path.exists():
        raise HazeMatchingError("model not found", path)
    if is_package(path):
        return ModelSource("package", path, path)
    if is_richardson_lucy(path):
        return ModelSource("richardson-lucy", path, model_file(path))
    return ModelSource("checkpoint", path, resolve_checkpoint_path(path))


def open_model(path: Path | str, use: Use, *, sampling: bool = False) -> ModelSource:
    """`locate_model`, refusing a kind that cannot serve `use` (or take sampling options)."""
    source = locate_model(path)
    for asked in (use, "sampling options") if sampling else (use,):
        refusal = REFUSALS.get((source.kind, asked))
        if refusal is not None:
            raise HazeMatchingError(refusal, source.path)
    return source
