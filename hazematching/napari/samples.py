"""Sample data for napari: the bundled example images, two clicks from a first try."""

from __future__ import annotations

import tifffile

from ..inference.bundled import example_image


def _layer(name: str) -> tuple:
    return tifffile.imread(example_image(f"{name}.tif")), {"name": name}, "image"


def widefield_example() -> list[tuple]:
    """A simulated widefield (hazy) image, held out from the bundled model's training."""
    return [_layer("widefield_1")]


def widefield_and_confocal_example() -> list[tuple]:
    """The widefield image and the confocal image a dehazed result should approach."""
    return [_layer("widefield_1"), _layer("confocal_1")]
