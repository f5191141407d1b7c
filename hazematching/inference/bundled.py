"""Where the bundled default model and the example images live, in a clone of the repository or
in an installed wheel.

The repository keeps the model at the top, in `model_zoo/`; a wheel (and so `pip install .`)
carries its package files inside the package, as `hazematching/model_zoo/` (pyproject.toml maps
that package onto the top-level folder). An editable install runs from the clone and has no copy
inside the package, so the lookup tries the installed copy first and then the clone's folder.
"""

from __future__ import annotations

from pathlib import Path

from ..bioimage.layout import is_package
from ..errors import HazeMatchingError

DEFAULT_MODEL = "hazematching-simulated"
_PACKAGE = Path(__file__).resolve().parents[1]
# installed wheel first, then a clone of the repository
MODEL_ZOOS = (_PACKAGE / "model_zoo", _PACKAGE.parent / "model_zoo")


def bundled_model() -> Path:
    """The default model, `model_zoo/hazematching-simulated` (an unpacked package folder)."""
    for zoo in MODEL_ZOOS:
        path = zoo / DEFAULT_MODEL
        if path.is_dir() and is_package(path):
            return path
    installed, clone = (zoo / DEFAULT_MODEL for zoo in MODEL_ZOOS)
    raise HazeMatchingError(
        f"the bundled model is missing (nor is it at {clone}): pass a model as the first argument",
        installed,
    )


# the example images: installed as hazematching/example_images/, in a clone at examples/
EXAMPLE_FOLDERS = (_PACKAGE / "example_images", _PACKAGE.parent / "examples")


def example_image(name: str) -> Path:
    """An example image shipped with the toolkit, e.g. `widefield_1.tif`."""
    for folder in EXAMPLE_FOLDERS:
        if (folder / name).is_file():
            return folder / name
    raise HazeMatchingError("example image not found", EXAMPLE_FOLDERS[-1] / name)
