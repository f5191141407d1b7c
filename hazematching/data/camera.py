"""Camera-like intensity augmentation: training images as other cameras would record them.

Real widefield images come in the units of their camera: 8, 12 or 16 bits, a gain that puts the
signal anywhere in that range, a baseline offset, and now and then saturated pixels. A training
pair is turned into such a recording by `Camera`: the hazy image is scaled, offset, rounded to
integers and clipped to the full scale; the clean target gets the same gain and offset (without
rounding or clipping), so the pair still says what the hazy image shows. Every draw comes from
the generator the trainer passes in, so augmented training stays reproducible and resumable.

All three steps are monotone, so a percentile of a recorded image follows from two order
statistics of the original one (`RankedPercentile`) without sorting the recording again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import CameraRecording, IntensityAugmentation


@dataclass(frozen=True)
class Camera:
    """A recording: counts = clip(round(gain * intensity + baseline), 0, full_scale)."""

    gain: float
    baseline: float
    full_scale: float

    def record(self, image: np.ndarray) -> np.ndarray:
        """The hazy image as this camera writes it (float32 counts)."""
        counts = np.round(image * self.gain + self.baseline)
        return np.clip(counts, 0.0, self.full_scale).astype(np.float32)

    def rescale(self, image: np.ndarray) -> np.ndarray:
        """The clean target in the recording's units (same gain and offset, not quantised)."""
        return (image * self.gain + self.baseline).astype(np.float32)


@dataclass(frozen=True)
class RankedPercentile:
    """The q-th percentile of an image (numpy's linear rule) by its two neighbouring order
    statistics: the percentile of any monotone recording of the image is then exact."""

    below: float
    above: float
    fraction: float

    @classmethod
    def of(cls, image: np.ndarray, q: float) -> RankedPercentile:
        flat = np.asarray(image, dtype=np.float64).ravel()
        position = q / 100.0 * (flat.size - 1)
        below = int(position)
        above = min(below + 1, flat.size - 1)
        ranked = np.partition(flat, [below, above])
        return cls(float(ranked[below]), float(ranked[above]), position - below)

    def value(self, camera: Camera | None = None) -> float:
        """The percentile of the image, or of its recording by `camera`."""
        low, high = self.below, self.above
        if camera is not None:
            low, high = (float(camera.record(np.array([v]))[0]) for v in (low, high))
        return low + (high - low) * self.fraction


def draw_camera(
    rng: np.random.Generator,
    augmentation: IntensityAugmentation,
    bright: float,
    saturating: float,
) -> Camera | None:
    """A random camera for one image, or None (left as it is) with 1 - `probability`.

    `bright` is the image's bright percentile: it lands at a random `fill` of the range above
    the baseline. With `saturation_probability` the gain is set instead so that the image's
    `saturating` value (its 1 - `saturated` quantile) reaches the full scale: that share of
    pixels saturates. Images without positive brightness are left as they are.
    """
    if rng.random() >= augmentation.probability or bright <= 0 or saturating <= 0:
        return None
    bits = augmentation.bit_depths[int(rng.integers(len(augmentation.bit_depths)))]
    full_scale = float(2**bits - 1)
    baseline = float(np.round(rng.uniform(*augmentation.baseline) * full_scale))
    if rng.random() < augmentation.saturation_probability:
        gain = (full_scale - baseline) / saturating
    else:
        gain = rng.uniform(*augmentation.fill) * (full_scale - baseline) / bright
    return Camera(float(gain), baseline, full_scale)


def recording_camera(recording: CameraRecording, hazy: np.ndarray) -> Camera:
    """The camera that records `hazy` as `recording` describes."""
    full_scale = float(2**recording.bits - 1)
    if recording.saturated > 0:
        reach = RankedPercentile.of(hazy, 100.0 * (1.0 - recording.saturated)).value()
        gain = (full_scale - recording.baseline) / reach
    else:
        bright = RankedPercentile.of(hazy, 99.8).value()
        gain = recording.fill * (full_scale - recording.baseline) / bright
    return Camera(float(gain), recording.baseline, full_scale)
