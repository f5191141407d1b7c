"""Per-channel z-score statistics computed on the training images and stored with the model.

The formula (x - mean) / (std + eps) is the one of BioImage.IO's `fixed_zero_mean_unit_variance`;
an exported package applies it inside its sampler (`sampler_kwargs` in `inference/sampling.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from ..config import StrictModel
from ..errors import HazeMatchingError

EPS = 1e-6


class Normalization(StrictModel):
    """Mean and standard deviation of the input (hazy) and target (clean) training images."""

    input_mean: float
    input_std: float = Field(gt=0)
    target_mean: float
    target_std: float = Field(gt=0)

    @classmethod
    def from_images(
        cls, inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray]
    ) -> Normalization:
        """Statistics over every pixel of the given images (accumulated in float64)."""
        return cls(**_stats("input", inputs), **_stats("target", targets))

    @property
    def input_scale(self) -> float:
        """Divisor of the hazy intensities once their mean is subtracted."""
        return self.input_std + EPS

    @property
    def target_scale(self) -> float:
        """Divisor of the clean intensities once their mean is subtracted."""
        return self.target_std + EPS

    def normalize_input(self, image: np.ndarray) -> np.ndarray:
        """Hazy intensities -> network units (float32)."""
        return ((image - self.input_mean) / self.input_scale).astype(np.float32)

    def normalize_target(self, image: np.ndarray) -> np.ndarray:
        """Clean intensities -> network units (float32)."""
        return ((image - self.target_mean) / self.target_scale).astype(np.float32)

    def denormalize_input(self, image: np.ndarray) -> np.ndarray:
        """Network units -> hazy intensities (the inverse of `normalize_input`)."""
        return (image * self.input_scale + self.input_mean).astype(np.float32)

    def denormalize_target(self, image: np.ndarray, *, is_std: bool = False) -> np.ndarray:
        """Network units -> clean intensities; a standard deviation is only rescaled."""
        scaled = image * self.target_scale
        return (scaled if is_std else scaled + self.target_mean).astype(np.float32)


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
