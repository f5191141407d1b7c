"""Opening a package's description with bioimageio.spec, offline, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HazeMatchingError
from .github import package_github_users, unverified_github_users
from .layout import PACKAGE_DESCRIPTION

if TYPE_CHECKING:
    from bioimageio.spec.model.v0_5 import ModelDescr


def read_description(path: Path) -> ModelDescr | None:
    """The validated spec-0.5 model description of a package (.zip or folder); None if invalid.

    Raises a one-line error when the package cannot be read at all (missing, corrupt zip,
    unreadable YAML, missing files). The GitHub users it lists are taken as given (see
    `github.py`).
    """
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model import v0_5

    path = Path(path)
    if not path.exists():
        raise HazeMatchingError("model package not found", path)
    source = path / PACKAGE_DESCRIPTION if path.is_dir() else path
    if path.is_dir() and not source.is_file():
        raise HazeMatchingError(f"no {PACKAGE_DESCRIPTION} in the package", path)
    try:
        with unverified_github_users(package_github_users(path)):
            descr = load_description(source, perform_io_checks=True)
    except Exception as error:  # corrupt zip, unreadable YAML, missing files ...
        raise HazeMatchingError(f"cannot open model package ({error})", path) from error
    if isinstance(descr, InvalidDescr) or not isinstance(descr, v0_5.ModelDescr):
        return None
    return descr


def load_package(path: Path) -> ModelDescr:
    """The description of a package HazeMatching can run: valid, one input, one output."""
    descr = read_description(path)
    if descr is None:
        raise HazeMatchingError("not a valid BioImage.IO model package (spec 0.5)", path)
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise HazeMatchingError("expected a package with one input and one output", path)
    return descr


def channel_names(descr: ModelDescr) -> list[str]:
    """Names of the output channels of a package."""
    for axis in descr.outputs[0].axes:
        if axis.type == "channel":
            return [str(name) for name in axis.channel_names]
    raise HazeMatchingError("the package output has no channel axis")


def recorded_settings(descr: ModelDescr) -> dict[str, Any]:
    """What the exporter recorded in the package's `config.hazematching` (training, sampling,
    normalisation, calibration); empty for a package made elsewhere."""
    return (descr.config.model_extra or {}).get("hazematching", {})
