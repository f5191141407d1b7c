"""Where the bundled default model lives, in a clone of the repository or in an installed wheel."""

from __future__ import annotations

from pathlib import Path

from ..bioimage.layout import is_package
from ..errors import HazeMatchingError

DEFAULT_MODEL = "hazematching-simulated"
MODEL_ZOO = Path(__file__).resolve().parents[2] / "model_zoo"


def bundled_model() -> Path:
    """The default model, `model_zoo/hazematching-simulated` (an unpacked package folder)."""
    path = MODEL_ZOO / DEFAULT_MODEL
    if not (path.is_dir() and is_package(path)):
        raise HazeMatchingError(
            "the bundled model is missing: pass a model as the first argument", path
        )
    return path
