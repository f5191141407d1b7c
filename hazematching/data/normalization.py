"""How a model maps intensities to network units: one decision, chosen at training and stored.

A normalisation is one member of the `Normalization` union, keyed on its `mode`:

- `dataset`: a fixed per-channel z-score of the training images (the hazy ones for the input,
  the clean ones for the target), the formula of BioImage.IO's `fixed_zero_mean_unit_variance`.
  Right for a user's own microscope, whose intensities match its training pairs.
- `per-image`: each whole input image is mapped by its own robust percentiles (CSBDeep/CARE's
  choice), and the result is mapped back with the same affine map, so a gain, an offset or another
  bit depth changes nothing but the units of the result.

Every path (training patches, library prediction, the block path, packages) asks the
normalisation for the `IntensityMap` of a whole input image and applies that one map; the block
path computes it once per image, never per block. Checkpoints written before the union existed
carry no `mode` and read as `dataset`.

A `dataset` model only knows the units of its training images, so it also records where their
intensities lay (`input_range`: the lowest 0.1st and the highest 99.9th percentile of any
training input, in network units) and `range_warning` says when an input lies far outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Discriminator, Field, Tag, TypeAdapter, model_validator

from ..config import StrictModel
from ..errors import HazeMatchingError

EPS = 1e-6
#: Percentiles that describe where an input image's intensities lie, for the guard.
GUARD_PERCENTILES = (0.1, 99.9)
#: How far beyond the training inputs' range (in multiples of its width) an input's percentile
#: may lie before `range_warning` fires; see `benchmarks/intensity_guard.py` for the measurement.
GUARD_MARGIN = 0.5


@dataclass(frozen=True)
class IntensityMap:
    """The affine maps between one image's intensities and network units.

    The network sees (hazy - input_offset) / input_scale; its outputs leave as
    x * output_scale + output_offset, a standard deviation as std * output_scale.
    """

    input_offset: float
    input_scale: float
    output_offset: float
    output_scale: float

    def normalize_input(self, image: np.ndarray) -> np.ndarray:
        """Hazy intensities -> network units (float32)."""
        return ((image - self.input_offset) / self.input_scale).astype(np.float32)

    def normalize_target(self, image: np.ndarray) -> np.ndarray:
        """Clean intensities -> network units (float32)."""
        return ((image - self.output_offset) / self.output_scale).astype(np.float32)

    def denormalize_input(self, image: np.ndarray) -> np.ndarray:
        """Network units -> hazy intensities (the inverse of `normalize_input`)."""
        return (image * self.input_scale + self.input_offset).astype(np.float32)

    def denormalize_target(self, image: np.ndarray, *, is_std: bool = False) -> np.ndarray:
        """Network units -> clean intensities; a standard deviation is only rescaled."""
        scaled = image * self.output_scale
        return (scaled if is_std else scaled + self.output_offset).astype(np.float32)


class DatasetNormalization(StrictModel):
    """Mean and standard deviation of the input (hazy) and target (clean) training images."""

    mode: Literal["dataset"] = "dataset"
    reads_image: ClassVar[bool] = False
    input_mean: float
    input_std: float = Field(gt=0)
    target_mean: float
    target_std: float = Field(gt=0)
    input_range: tuple[float, float] | None = Field(
        None,
        description="lowest 0.1st and highest 99.9th percentile of the training inputs, "
        "normalised (None: not recorded, for checkpoints older than the guard)",
    )

    @classmethod
    def from_images(
        cls, inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray]
    ) -> DatasetNormalization:
        """Statistics over every pixel of the given images (accumulated in float64), and the
        normalised range of the inputs."""
        stats = cls(**_stats("input", inputs), **_stats("target", targets))
        ends = np.array([stats.input_percentiles(x) for x in inputs])
        return stats.model_copy(
            update={"input_range": (float(ends[:, 0].min()), float(ends[:, 1].max()))}
        )

    def input_percentiles(self, hazy: np.ndarray) -> tuple[float, float]:
        """The 0.1st and 99.9th percentile of an input image, in network units."""
        low, high = np.percentile(np.asarray(hazy, dtype=np.float64), GUARD_PERCENTILES)
        fixed = self.intensity_map()
        return (low - fixed.input_offset) / fixed.input_scale, (
            high - fixed.input_offset
        ) / fixed.input_scale

    def input_intensities(self, *values: float) -> list[float]:
        """Network units of the input -> its intensities (float64, for messages and cards)."""
        fixed = self.intensity_map()
        return [v * fixed.input_scale + fixed.input_offset for v in values]

    def range_warning(self, hazy: np.ndarray) -> str | None:
        """A one-line warning when `hazy` lies far outside the training inputs' intensities.

        Far: an end of its 0.1-99.9th percentile range lies more than `GUARD_MARGIN` widths of
        the training inputs' range beyond it. Without a recorded range the warning says that
        the check cannot be made.
        """
        if self.input_range is None:
            return (
                "this dataset-normalised model records no training intensity range, so nothing "
                "checks that the image lies in it; a model trained or fine-tuned now records one"
            )
        low, high = self.input_percentiles(hazy)
        train_low, train_high = self.input_range
        margin = GUARD_MARGIN * (train_high - train_low)
        if train_low - margin <= low and high <= train_high + margin:
            return None
        raw = self.input_intensities(low, high, *self.input_range)
        return (
            f"intensities {raw[0]:.4g} to {raw[1]:.4g} (0.1-99.9th percentiles) lie far "
            f"outside the training inputs' {raw[2]:.4g} to {raw[3]:.4g}: this model normalises "
            "with fixed training statistics, so its result is unreliable; use a per-image "
            "model or fine-tune on this microscope's pairs"
        )

    def intensity_map(self, hazy: np.ndarray | None = None) -> IntensityMap:
        """The same map for every image (`hazy` is not looked at)."""
        return IntensityMap(
            input_offset=self.input_mean,
            input_scale=self.input_std + EPS,
            output_offset=self.target_mean,
            output_scale=self.target_std + EPS,
        )


class PerImageNormalization(StrictModel):
    """Each whole input image mapped by its own percentiles; results mapped back alike."""

    mode: Literal["per-image"] = "per-image"
    reads_image: ClassVar[bool] = True
    low_percentile: float = Field(default=1.0, ge=0, lt=100)
    high_percentile: float = Field(default=99.8, gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> PerImageNormalization:
        if self.low_percentile >= self.high_percentile:
            raise ValueError("low_percentile must lie below high_percentile")
        return self

    def intensity_map(self, hazy: np.ndarray | None = None) -> IntensityMap:
        """The map of one whole input image: its low percentile to 0, its high one to 1.

        A constant image has no spread; it is scaled by its own magnitude (or 1 for zeros), so
        the result is defined and still in the image's units.
        """
        if hazy is None:
            raise HazeMatchingError("a per-image normalisation needs the input image")
        values = np.asarray(hazy, dtype=np.float64)
        low, high = np.percentile(values, [self.low_percentile, self.high_percentile])
        return self.map_between(float(low), float(high))

    def range_warning(self, hazy: np.ndarray) -> str | None:
        """None: an image in any units is mapped to the same network units."""
        return None

    def map_between(self, low: float, high: float) -> IntensityMap:
        """The map of an image whose low and high percentiles are `low` and `high`."""
        scale = spread_scale(low, high)
        return IntensityMap(low, scale, low, scale)


def spread_scale(low: float, high: float) -> float:
    """high - low, or for a constant image its magnitude, or 1 for an all-zero image."""
    if high > low:
        return high - low
    return abs(high) if high != 0 else 1.0


def _mode(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("mode", "dataset")
    return getattr(value, "mode", "dataset")


Normalization = Annotated[
    Annotated[DatasetNormalization, Tag("dataset")]
    | Annotated[PerImageNormalization, Tag("per-image")],
    Discriminator(_mode),
]
"""A model's normalisation: one of the modes above, validated from its `mode` key."""

_ADAPTER: TypeAdapter[Normalization] = TypeAdapter(Normalization)


def normalization_from(raw: Any) -> DatasetNormalization | PerImageNormalization:
    """Validate a stored normalisation (a checkpoint's or a package's); no `mode` is `dataset`."""
    return _ADAPTER.validate_python(raw)


def _stats(name: str, images: Sequence[np.ndarray]) -> dict[str, float]:
    count = sum(image.size for image in images)
    if count == 0:
        raise HazeMatchingError("no training pixels to compute statistics from")
    total = sum(float(image.sum(dtype=np.float64)) for image in images)
    mean = total / count
    squares = sum(float(((image - mean) ** 2).sum(dtype=np.float64)) for image in images)
    std = float(np.sqrt(squares / count))
    if std == 0.0:
        raise HazeMatchingError(f"the {name} training images are constant: cannot normalise")
    return {f"{name}_mean": mean, f"{name}_std": std}
