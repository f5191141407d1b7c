"""Where a BioImage.IO package keeps its description, and how to tell a package from a path."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import yaml

PACKAGE_DESCRIPTION = "rdf.yaml"


def is_package(path: Path) -> bool:
    """A .zip package or an unpacked package folder (one holding rdf.yaml)."""
    path = Path(path)
    return path.suffix == ".zip" or (path / PACKAGE_DESCRIPTION).is_file()


def read_raw_description(path: Path) -> dict[str, Any] | None:
    """The rdf.yaml of a package (.zip or folder) as plain data, without validation.

    None for anything unreadable: opening the package properly reports the actual problem.
    """
    path = Path(path)
    try:
        if path.is_dir():
            text = (path / PACKAGE_DESCRIPTION).read_text()
        else:
            with zipfile.ZipFile(path) as archive:
                text = archive.read(PACKAGE_DESCRIPTION).decode()
        rdf = yaml.safe_load(text)
    except (OSError, KeyError, UnicodeDecodeError, zipfile.BadZipFile, yaml.YAMLError):
        return None
    return rdf if isinstance(rdf, dict) else None
