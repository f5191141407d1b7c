"""The images `predict` accepts, read by the reader their format needs.

Plain TIFFs are read with tifffile (no extra dependency), OME-Zarr stores lazily with ome-zarr,
and microscope files (CZI, ND2, LIF, OME-TIFF) through bioio, the `formats` extra. Each gives
a stack of 2D planes of one channel and the `ImageMetadata` its outputs carry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import HazeMatchingError
from .metadata import ImageMetadata, from_scale
from .microscopy import SUFFIXES, is_microscopy_file, read_microscopy, suffix_of
from .omezarr import ZarrImage, is_ome_zarr, read_ome_zarr
from .tiff import read_channel

#: Suffixes of the images `predict` reads (the first argument is a model unless it has one).
IMAGE_SUFFIXES = frozenset({".tif", ".tiff", ".zarr"} | SUFFIXES)


def is_image_path(path: Path) -> bool:
    """Whether `path` names an image by its suffix (as opposed to a model)."""
    return suffix_of(Path(path)) in IMAGE_SUFFIXES


def selector(text: str | None) -> int | str | None:
    """A `--channel` or `--scene` value: an index when it is a whole number, else a name."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def input_name(path: Path) -> str:
    """The name outputs of an input get: the file's or store's name without its format's
    suffix (`.tif`, `.ome.tif`, `.czi`, `.zarr`, `.ome.zarr`)."""
    name = Path(path).name
    suffix = suffix_of(Path(path))
    stem = name[: -len(suffix)] if suffix else name
    return stem[: -len(".ome")] if stem.lower().endswith(".ome") else stem


def read_input(
    path: Path, channel: int | str | None = None, scene: int | str | None = None
) -> tuple[np.ndarray | ZarrImage, ImageMetadata]:
    """One channel of an image as float32 (planes, Y, X), or an OME-Zarr image opened lazily,
    with its metadata. `scene` selects a scene of a multi-scene microscope file."""
    path = Path(path)
    if is_ome_zarr(path):
        if channel is not None or scene is not None:
            raise HazeMatchingError(
                "--channel and --scene select within TIFFs and microscope files only", path
            )
        image = read_ome_zarr(path)
        return image, from_scale(image.scale)
    if is_microscopy_file(path):
        return read_microscopy(path, channel, scene)
    if scene is not None:
        raise HazeMatchingError("a plain TIFF has one scene; --scene is for microscope files", path)
    return read_channel(path, channel)


def list_images(folder: Path) -> list[Path]:
    """Image files (TIFFs and microscope files) directly inside `folder`, sorted by name
    (hidden files skipped)."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and is_image_path(p)
    )


def read_image(path: Path) -> np.ndarray:
    """A single-channel TIFF or microscope file as float32 (planes, Y, X): the files of
    `input/`, `target/`, `widefield/` and `confocal/` data folders."""
    image, _ = read_input(path)
    return np.asarray(image, dtype=np.float32)
