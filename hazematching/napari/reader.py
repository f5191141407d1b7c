"""A napari reader for microscope files (CZI, ND2, LIF, OME-TIFF) through bioio.

Each channel becomes an image layer named after it, scaled in micrometres by the file's pixel
size and z-spacing, so the dehaze widget's result layers (which take the input layer's scale)
overlay it at the right size. A multi-scene file opens its first scene, named in the layers.
Needs the `formats` extra; without it napari is told in one line what to install.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..data.metadata import ImageMetadata
from ..data.microscopy import (
    SUFFIXES,
    channel_names,
    open_image,
    read_opened,
    select_scene,
    suffix_of,
)

LayerData = tuple[object, dict[str, object], str]


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """napari's reader hook: `read_layers` for one microscope file, None for anything else."""
    if isinstance(path, list) or suffix_of(Path(path)) not in SUFFIXES:
        return None
    return read_layers


def read_layers(path: str) -> list[LayerData]:
    """One image layer per channel of the file's first scene, with its physical scale (the file
    is opened and parsed once for all its channels)."""
    image = open_image(Path(path))
    several = len(image.scenes) > 1
    scene = 0 if several else None
    select_scene(image, scene, Path(path))
    layers = []
    for index, name in enumerate(channel_names(image)):
        planes, metadata = read_opened(image, Path(path), index, scene)
        data = planes if len(planes) > 1 else planes[0]
        label = f"{Path(path).name} {name}" + (f" ({metadata.scene})" if several else "")
        layers.append(
            (
                data,
                {
                    "name": label,
                    "scale": _scale(metadata, data.ndim),
                    "metadata": {"hazematching": metadata.record()},
                },
                "image",
            )
        )
    return layers


def _scale(metadata: ImageMetadata, ndim: int) -> tuple[float, ...]:
    """Micrometres per pixel for each axis of a layer (1 where the file does not say)."""
    y, x = metadata.pixel_size or (1.0, 1.0)
    if ndim == 2:
        return (y, x)
    spacing = metadata.z_spacing if metadata.plane_axis == "Z" and metadata.z_spacing else 1.0
    return (spacing, y, x)
