"""Paired training data: discovery on disk, train/val split and random augmented patches.

Accepted layouts of a data folder:
- `train/` and `val/` sub-folders (what `hazematching simulate` writes), each in one of the
  layouts below; without `val/`, a seeded fraction of `train/` is held out;
- 2-channel TIFFs (channel 0 = confocal target, channel 1 = widefield input);
- `input/` and `target/` sub-folders of single-channel images matched by file name: TIFFs or
  microscope files (CZI, ND2, LIF, OME-TIFF; the `formats` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import IntensityAugmentation
from ..errors import HazeMatchingError
from .camera import Camera, RankedPercentile, draw_camera
from .inputs import list_images, read_image
from .normalization import IntensityMap, Normalization, PerImageNormalization
from .tiff import read_pair

TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class PairedImages:
    """Matched 2D (input, target) planes with the file each came from."""

    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    sources: list[Path]

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, files: set[Path]) -> PairedImages:
        """The planes whose source file is in `files`."""
        keep = [i for i, source in enumerate(self.sources) if source in files]
        return PairedImages(
            [self.inputs[i] for i in keep],
            [self.targets[i] for i in keep],
            [self.sources[i] for i in keep],
        )


def list_tiffs(folder: Path) -> list[Path]:
    """TIFF files directly inside `folder`, sorted by name (hidden files skipped)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in TIFF_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def split_folder(data_dir: Path, split: str) -> Path:
    """`data_dir/split` (e.g. the val/ or test/ of simulated data) if it exists, else data_dir."""
    data_dir = Path(data_dir)
    return data_dir / split if (data_dir / split).is_dir() else data_dir


def load_pairs(folder: Path) -> PairedImages:
    """All pairs in `folder`, either 2-channel TIFFs or matched input/ and target/ files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HazeMatchingError("data folder not found", folder)
    inputs: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    sources: list[Path] = []
    if (folder / "input").is_dir() and (folder / "target").is_dir():
        input_files = {p.name: p for p in list_images(folder / "input")}
        target_files = {p.name: p for p in list_images(folder / "target")}
        unmatched = sorted(set(input_files) ^ set(target_files))
        if unmatched:
            raise HazeMatchingError(
                f"files without a partner in input/ or target/: {unmatched}", folder
            )
        for name in sorted(input_files):
            x, y = read_image(input_files[name]), read_image(target_files[name])
            if x.shape != y.shape:
                raise HazeMatchingError(
                    f"input shape {x.shape} does not match target shape {y.shape}",
                    input_files[name],
                )
            _extend(inputs, targets, sources, x, y, input_files[name])
    else:
        for path in list_tiffs(folder):
            x, y = read_pair(path)
            _extend(inputs, targets, sources, x, y, path)
    if not inputs:
        raise HazeMatchingError(
            "no image pairs found (expected 2-channel TIFFs or input/ and target/ folders)", folder
        )
    return PairedImages(inputs, targets, sources)


def _extend(
    inputs: list[np.ndarray],
    targets: list[np.ndarray],
    sources: list[Path],
    x: np.ndarray,
    y: np.ndarray,
    path: Path,
) -> None:
    for plane in range(x.shape[0]):
        inputs.append(x[plane])
        targets.append(y[plane])
        sources.append(path)


def split_by_file(
    pairs: PairedImages, val_fraction: float, seed: int
) -> tuple[PairedImages, PairedImages]:
    """Hold out a seeded fraction of files (never planes of one file on both sides)."""
    files = sorted(set(pairs.sources))
    val_files = held_out_files(files, val_fraction, seed, "(or provide a val/ folder)")
    return pairs.subset(set(files) - val_files), pairs.subset(val_files)


def held_out_files(files: list[Path], val_fraction: float, seed: int, hint: str) -> set[Path]:
    """A seeded `val_fraction` of `files` (at least one, never all) to validate on."""
    if len(files) < 2:
        raise HazeMatchingError(
            f"need at least 2 files to hold some out for validation {hint}", files[0].parent
        )
    order = np.random.default_rng(seed).permutation(len(files))
    n_val = min(max(1, round(val_fraction * len(files))), len(files) - 1)
    return {files[i] for i in order[:n_val]}


def load_training_data(
    data_dir: Path, val_fraction: float, seed: int
) -> tuple[PairedImages, PairedImages]:
    """(train, val) pairs from any accepted layout of `data_dir`."""
    data_dir = Path(data_dir)
    if (data_dir / "train").is_dir():
        train = load_pairs(data_dir / "train")
        if (data_dir / "val").is_dir():
            return train, load_pairs(data_dir / "val")
        return split_by_file(train, val_fraction, seed)
    return split_by_file(load_pairs(data_dir), val_fraction, seed)


def require_min_size(images: list[np.ndarray], sources: list[Path], size: int, what: str) -> None:
    """Every image must be at least `size` px on each side; `what` names the need."""
    for image, source in zip(images, sources, strict=True):
        if min(image.shape) < size:
            raise HazeMatchingError(
                f"image of size {image.shape[0]}x{image.shape[1]} is smaller than {what} {size}",
                source,
            )


class PatchSampler:
    """Random normalised (hazy, target) patches with flips and 90-degree rotations.

    Images are drawn with probability proportional to their area, so every pixel is equally
    likely to be seen. Each patch is normalised with the intensity map of its whole image. With
    `augmentation`, a patch may come from its image as a random camera records it
    (`data/camera.py`), normalised with the map of that whole recording. All randomness comes
    from the generator passed to `sample`, which makes training reproducible and resumable (the
    trainer derives it from the seed and step).
    """

    def __init__(
        self,
        pairs: PairedImages,
        normalization: Normalization,
        patch_size: int,
        augmentation: IntensityAugmentation | None = None,
    ):
        require_min_size(pairs.inputs, pairs.sources, patch_size, "the patch size")
        self.inputs = [np.asarray(x, dtype=np.float32) for x in pairs.inputs]
        self.targets = [np.asarray(y, dtype=np.float32) for y in pairs.targets]
        self.normalization = normalization
        self.maps = [normalization.intensity_map(x) for x in pairs.inputs]
        self.augmentation = augmentation
        self.patch_size = patch_size
        self.weights = area_weights(self.inputs)
        self.ranks: list[dict[str, RankedPercentile]] = []
        if augmentation is not None:
            low, high = _percentiles(normalization)
            quantiles = {
                "low": low,
                "high": high,
                "saturating": 100.0 * (1.0 - augmentation.saturated),
            }
            self.ranks = [
                {name: RankedPercentile.of(x, q) for name, q in quantiles.items()}
                for x in self.inputs
            ]

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(hazy, target) float32 arrays of shape (batch, 1, patch, patch)."""
        (hazy, target), images = random_patches(
            rng, batch, self.patch_size, self.weights, self.inputs, self.targets
        )
        for b, i in enumerate(images):
            camera = None
            if self.augmentation is not None:
                ranks = self.ranks[i]
                camera = draw_camera(
                    rng, self.augmentation, ranks["high"].value(), ranks["saturating"].value()
                )
            intensities = self.maps[i] if camera is None else self._recorded_map(i, camera)
            x = hazy[b, 0] if camera is None else camera.record(hazy[b, 0])
            y = target[b, 0] if camera is None else camera.rescale(target[b, 0])
            hazy[b, 0] = intensities.normalize_input(x)
            target[b, 0] = intensities.normalize_target(y)
        return hazy, target

    def _recorded_map(self, image: int, camera: Camera) -> IntensityMap:
        """The intensity map of image `image` as `camera` records it, without recording it."""
        if not isinstance(self.normalization, PerImageNormalization):
            return self.maps[image]  # a fixed map whatever the units
        ranks = self.ranks[image]
        return self.normalization.map_between(
            ranks["low"].value(camera), ranks["high"].value(camera)
        )


def _percentiles(normalization: Normalization) -> tuple[float, float]:
    """The low and high percentiles an augmentation tracks: the per-image ones (a dataset
    model's, the per-image defaults: only the high one places the camera's range)."""
    tracked = (
        normalization
        if isinstance(normalization, PerImageNormalization)
        else PerImageNormalization()
    )
    return tracked.low_percentile, tracked.high_percentile


def area_weights(images: list[np.ndarray]) -> np.ndarray:
    """Probability of drawing each image: proportional to its area (every pixel equally likely)."""
    areas = np.array([image.size for image in images], dtype=float)
    return areas / areas.sum()


def random_patches(
    rng: np.random.Generator,
    batch: int,
    patch: int,
    weights: np.ndarray,
    *stacks: list[np.ndarray],
) -> tuple[list[np.ndarray], list[int]]:
    """`batch` random windows, flipped and rotated, cut at the same place from every stack.

    Each stack is a list of images of matching shapes (one stack for single images, two for
    pairs); returns one float32 array (batch, 1, patch, patch) per stack, and the image each
    window was cut from.
    """
    out = [np.empty((batch, 1, patch, patch), dtype=np.float32) for _ in stacks]
    images = []
    for b in range(batch):
        i = int(rng.choice(len(stacks[0]), p=weights))
        images.append(i)
        height, width = stacks[0][i].shape
        y = int(rng.integers(0, height - patch + 1))
        x = int(rng.integers(0, width - patch + 1))
        transform = int(rng.integers(0, 8))
        for array, stack in zip(out, stacks, strict=True):
            array[b, 0] = _dihedral(stack[i][y : y + patch, x : x + patch], transform)
    return out, images


def _dihedral(patch: np.ndarray, transform: int) -> np.ndarray:
    """One of the 8 flips/rotations of a square patch."""
    rotated = np.rot90(patch, k=transform % 4)
    return rotated[:, ::-1] if transform >= 4 else rotated
