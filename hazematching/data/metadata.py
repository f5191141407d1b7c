"""What a microscope file says about the planes read from it, carried into the outputs.

Dehazing keeps the pixel grid, so the pixel size, the spacing of a z-stack and the name of the
channel read hold for the results too: the writers put them into ImageJ and OME-TIFF metadata
(OME-Zarr results keep the input store's own scales), and `predict.json` records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: What the planes of a stack are: depths (Z) or time points (T).
PlaneAxis = Literal["Z", "T"]


@dataclass(frozen=True)
class ImageMetadata:
    """Physical metadata of an image read as (planes, Y, X); None where the file says nothing.

    `pixel_size` is (y, x) and `z_spacing` the distance of z planes, both in micrometres;
    `plane_axis` says whether the planes are depths or time points; `channel` is the name of
    the channel read and `scene` the scene (position) of a multi-scene file.
    """

    pixel_size: tuple[float, float] | None = None
    z_spacing: float | None = None
    plane_axis: PlaneAxis = "Z"
    channel: str | None = None
    scene: str | None = None

    def record(self) -> dict[str, object]:
        """The metadata as `predict.json` records it for each input (units: micrometres)."""
        return {
            "pixel_size_um": list(self.pixel_size) if self.pixel_size else None,
            "z_spacing_um": self.z_spacing,
            "planes": self.plane_axis,
            "channel": self.channel,
            "scene": self.scene,
        }


def from_scale(scale: dict[str, float]) -> ImageMetadata:
    """The metadata of an OME-Zarr image from its axes' scales (`omezarr.ZarrImage.scale`)."""
    pixel = (scale["y"], scale["x"]) if "y" in scale and "x" in scale else None
    return ImageMetadata(pixel_size=pixel, z_spacing=scale.get("z"))


def positive(value: object) -> float | None:
    """A physical size as a positive float, or None for a missing, zero or nonsensical one."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number > 0 and number == number and number != float("inf") else None
