"""Unpaired training data: widefield and confocal images of different samples.

A data folder for unpaired training holds two sub-folders of single-channel images (2D images or
stacks of planes; TIFFs or microscope files), `widefield/` and `confocal/`, with any files and
any counts: nothing is matched. A seeded fraction of each side's files is held out for
validation. Both sides must share one image size, a proxy for one pixel size, which the blur
kernel (in pixels) relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HazeMatchingError
from .dataset import (
    area_weights,
    held_out_files,
    random_patches,
    require_min_size,
)
from .inputs import list_images, read_image

WIDEFIELD = "widefield"
CONFOCAL = "confocal"


@dataclass(frozen=True)
class ImageSet:
    """2D planes of one domain with the file each came from."""

    planes: list[np.ndarray]
    sources: list[Path]

    def __len__(self) -> int:
        return len(self.planes)

    def subset(self, files: set[Path]) -> ImageSet:
        """The planes whose source file is in `files`."""
        keep = [i for i, source in enumerate(self.sources) if source in files]
        return ImageSet([self.planes[i] for i in keep], [self.sources[i] for i in keep])


@dataclass(frozen=True)
class UnpairedImages:
    """Widefield (hazy) and confocal (clean) planes that are not matched."""

    widefield: ImageSet
    confocal: ImageSet


def is_unpaired_folder(folder: Path) -> bool:
    """Whether `folder` has the unpaired layout (a widefield/ or a confocal/ sub-folder)."""
    folder = Path(folder)
    return (folder / WIDEFIELD).is_dir() or (folder / CONFOCAL).is_dir()


def _load_side(folder: Path, side: str) -> ImageSet:
    path = folder / side
    if not path.is_dir():
        raise HazeMatchingError(
            f"unpaired data needs a {side}/ folder of single-channel images", folder
        )
    files = list_images(path)
    if not files:
        raise HazeMatchingError(f"no images in the {side}/ folder", path)
    planes: list[np.ndarray] = []
    sources: list[Path] = []
    for file in files:
        for plane in read_image(file):
            planes.append(plane)
            sources.append(file)
    return ImageSet(planes, sources)


def load_unpaired(folder: Path) -> UnpairedImages:
    """Both sides of an unpaired data folder, checked: present, non-empty, one image size."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HazeMatchingError("data folder not found", folder)
    data = UnpairedImages(_load_side(folder, WIDEFIELD), _load_side(folder, CONFOCAL))
    reference = data.widefield.planes[0].shape
    for images in (data.widefield, data.confocal):
        for plane, source in zip(images.planes, images.sources, strict=True):
            if plane.shape != reference:
                raise HazeMatchingError(
                    f"image size {plane.shape[0]}x{plane.shape[1]} differs from "
                    f"{reference[0]}x{reference[1]} of {data.widefield.sources[0].name}: both "
                    "sides must have one image size (and pixel size)",
                    source,
                )
    return data


def _split_side(images: ImageSet, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    files = sorted(set(images.sources))
    val_files = held_out_files(files, val_fraction, seed, "on each side")
    return images.subset(set(files) - val_files), images.subset(val_files)


def split_unpaired(
    data: UnpairedImages, val_fraction: float, seed: int
) -> tuple[UnpairedImages, UnpairedImages]:
    """(train, val): a seeded fraction of each side's files held out (never planes of one file on
    both sides of the split)."""
    wf_train, wf_val = _split_side(data.widefield, val_fraction, seed)
    cf_train, cf_val = _split_side(data.confocal, val_fraction, seed + 1)
    return UnpairedImages(wf_train, cf_train), UnpairedImages(wf_val, cf_val)


class DomainPatches:
    """Random normalised patches of one domain, with flips and 90-degree rotations.

    As for pairs (`PatchSampler`), images are drawn in proportion to their area and all
    randomness comes from the generator passed to `sample`.
    """

    def __init__(
        self, images: ImageSet, normalize: Callable[[np.ndarray], np.ndarray], patch_size: int
    ):
        require_min_size(images.planes, images.sources, patch_size, "the patch size")
        self.planes = [normalize(plane) for plane in images.planes]
        self.patch_size = patch_size
        self.weights = area_weights(self.planes)

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        """A float32 array of shape (batch, 1, patch, patch)."""
        return random_patches(rng, batch, self.patch_size, self.weights, self.planes)[0][0]
