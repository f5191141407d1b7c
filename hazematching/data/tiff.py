"""Reading and writing microscopy TIFFs with validated axes.

Paired files hold two channels, channel 0 = confocal target and channel 1 = widefield input (the
layout of the paper's data). A TIFF is read as a stack of 2D planes: a 2D image, or one extra
axis (Z, T, ...) whose planes are handled as many 2D images; channels come from the axes
metadata (or the paired layouts), and files with two or more axes of planes are refused. The
pixel size and z-spacing of ImageJ TIFFs are read and written (ImageJ resolution, `spacing`,
`unit`); OME-TIFFs are written here and read through bioio (`data/microscopy.py`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile

from ..errors import HazeMatchingError
from ..fileio import atomic_path
from .metadata import ImageMetadata, positive

TARGET_CHANNEL = 0
INPUT_CHANNEL = 1

#: How ImageJ and others spell micrometres in a TIFF's `unit`.
MICROMETRES = {
    "micron",
    "microns",
    "um",
    "\u00b5m",
    "\u03bcm",
    "\\u00b5m",
    "micrometer",
    "micrometre",
}
#: The unit written into ImageJ TIFFs (Fiji reads it as micrometres).
UNIT = "um"


def _resolution(tif: tifffile.TiffFile, tag: str) -> float | None:
    """Micrometres per pixel from an X/YResolution tag (pixels per unit), if it has a value."""
    found = tif.pages.first.tags.get(tag)
    if found is None:
        return None
    numerator, denominator = found.value
    per_unit = positive(numerator / denominator) if denominator else None
    return 1.0 / per_unit if per_unit else None


def _tiff_metadata(tif: tifffile.TiffFile) -> ImageMetadata:
    """Pixel size and z-spacing an ImageJ TIFF records in micrometres (other units and plain
    TIFFs' DPI say nothing about the sample, so they are ignored)."""
    imagej = tif.imagej_metadata or {}
    if str(imagej.get("unit", "")).lower() not in MICROMETRES:
        return ImageMetadata()
    x, y = _resolution(tif, "XResolution"), _resolution(tif, "YResolution")
    return ImageMetadata(
        pixel_size=(y, x) if x and y else None, z_spacing=positive(imagej.get("spacing"))
    )


def _read_raw(path: Path) -> tuple[np.ndarray, str, ImageMetadata]:
    """Array, tifffile axes string and metadata of the first series, with clear errors for bad
    files."""
    path = Path(path)
    if not path.is_file():
        raise HazeMatchingError("file not found", path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
            metadata = _tiff_metadata(tif)
    except Exception as error:  # tifffile raises many types for truncated or foreign files
        raise HazeMatchingError(f"cannot read as TIFF ({error})", path) from error
    if data.dtype.kind not in "uif":
        raise HazeMatchingError(
            f"unsupported pixel type {data.dtype} (need integer or float)", path
        )
    if len(axes) != data.ndim:
        axes = "Q" * (data.ndim - 2) + "YX"
    if "S" in axes and "C" not in axes:  # colour samples are channels
        axes = axes.replace("S", "C")
        if not axes.endswith("YX"):  # interleaved RGB (Y, X, C): move C before Y, X
            data, axes = np.moveaxis(data, axes.index("C"), -3), axes.replace("C", "")[:-2] + "CYX"
    if data.ndim < 2 or not axes.endswith("YX"):
        raise HazeMatchingError(f"expected the last two axes to be Y and X, got {axes}", path)
    return data, axes, metadata


def _channel_axis(data: np.ndarray, axes: str, channels: int) -> int | None:
    """Index of the channel axis, from metadata or from the paired layouts (C,Y,X), (Z,C,Y,X)."""
    if "C" in axes:
        return axes.index("C")
    if channels == 2 and data.ndim == 3 and data.shape[0] == 2:
        return 0
    if channels == 2 and data.ndim == 4 and data.shape[1] == 2:
        return 1
    return None


def require_one_plane_axis(
    data: np.ndarray, axes: str, channel: int | None, path: Path | str
) -> None:
    """Refuse more than one axis of planes (e.g. time and depth) besides channels and Y, X.

    A 2D image or one stack of 2D planes (Z, T, ... of length > 1) is what the models dehaze;
    a TZYX or TZCYX file would otherwise be flattened into planes without anyone noticing.
    """
    planes = [
        f"{axes[i]}={data.shape[i]}"
        for i in range(data.ndim - 2)
        if i != channel and data.shape[i] > 1
    ]
    if len(planes) > 1:
        raise HazeMatchingError(
            f"has axes {axes} with shape {data.shape}: expected a 2D image or one stack of 2D "
            f"planes, found {len(planes)} axes of planes ({', '.join(planes)}); save one "
            "stack (e.g. one time point) per file",
            path,
        )


def read_planes(path: Path, channels: int | None) -> np.ndarray:
    """Read a TIFF as float32 (planes, channels, Y, X), checking channel count and finiteness.

    `channels=None` accepts any channel count (a multi-channel file then needs a C axis in its
    metadata or the (C, Y, X) / (Z, C, Y, X) layout with two channels).
    """
    return _planes(path, channels)[0]


def _planes(path: Path, channels: int | None) -> tuple[np.ndarray, ImageMetadata]:
    """`read_planes` and the file's metadata (planes: time points if the stack's axis is T)."""
    data, axes, metadata = _read_raw(path)
    axis = _channel_axis(data, axes, 2 if channels is None else channels)
    require_one_plane_axis(data, axes, axis, path)
    stacked = [axes[i] for i in range(data.ndim - 2) if i != axis and data.shape[i] > 1]
    if stacked == ["T"]:
        metadata = replace(metadata, plane_axis="T")
    if axis is None:
        found = 1
        data = data[:, None] if data.ndim > 2 else data[None, None]
        data = data.reshape(-1, 1, *data.shape[-2:])
    else:
        found = data.shape[axis]
        data = np.moveaxis(data, axis, -3).reshape(-1, found, *data.shape[-2:])
    if channels is not None and found != channels:
        what = "a pair (channel 0 target, channel 1 input)" if channels == 2 else "1 channel"
        raise HazeMatchingError(
            f"expected {what}, found {found} channel(s) in shape {data.shape} (axes {axes})", path
        )
    data = data.astype(np.float32, copy=False)
    if not np.isfinite(data).all():
        raise HazeMatchingError("contains NaN or infinite values", path)
    return data, metadata


def read_pair(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of a 2-channel TIFF, each float32 (planes, Y, X)."""
    data = read_planes(path, channels=2)
    return data[:, INPUT_CHANNEL], data[:, TARGET_CHANNEL]


def read_single(path: Path, channel: int | None = None) -> np.ndarray:
    """One channel of a TIFF as float32 (planes, Y, X).

    Without `channel` the file must have a single channel; with it, that channel is taken from a
    multi-channel file (e.g. channel 1, the widefield input, of a paired file).
    """
    return read_channel(path, channel)[0]


def read_channel(path: Path, channel: int | str | None = None) -> tuple[np.ndarray, ImageMetadata]:
    """`read_single` and the file's metadata (pixel size, z-spacing, what the planes are).

    A channel name is refused: a plain TIFF names no channels (an OME-TIFF does, and is read
    through bioio).
    """
    if isinstance(channel, str):
        raise HazeMatchingError(
            f"names no channels, so channel {channel!r} cannot be found; give its index "
            "(0 = first)",
            path,
        )
    if channel is None:
        data, metadata = _planes(path, channels=1)
        return data[:, 0], metadata
    data, metadata = _planes(path, channels=None)
    if not 0 <= channel < data.shape[1]:
        raise HazeMatchingError(
            f"has {data.shape[1]} channel(s); channel {channel} does not exist", path
        )
    return data[:, channel], metadata


def write_tiff(
    path: Path,
    data: np.ndarray,
    axes: str,
    channel_names: list[str] | None = None,
    physical: ImageMetadata | None = None,
) -> None:
    """Write float32 data as an ImageJ hyperstack with axes metadata, atomically.

    `axes` uses ImageJ letters in ImageJ order (e.g. "CYX", "ZCYX", "TCYX"); channel names become
    slice labels, which Fiji shows for each channel. `physical` gives the pixel size (ImageJ
    resolution in micrometres), the z-spacing and the source channel's name (in `Info`).
    """
    if data.ndim != len(axes):
        raise ValueError(f"data of shape {data.shape} does not match axes {axes}")
    physical = physical or ImageMetadata()
    metadata: dict[str, object] = {"axes": axes}
    if channel_names:
        planes = int(np.prod(data.shape[:-2]))
        repeats = planes // len(channel_names)
        metadata["Labels"] = list(channel_names) * repeats
    resolution = None
    if physical.pixel_size is not None:
        resolution = (1.0 / physical.pixel_size[1], 1.0 / physical.pixel_size[0])
        metadata["unit"] = UNIT
    if physical.z_spacing is not None and "Z" in axes:
        metadata["spacing"] = physical.z_spacing
        metadata["unit"] = UNIT
    if physical.channel is not None:
        metadata["Info"] = f"source channel: {physical.channel}"
    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(
            tmp,
            np.ascontiguousarray(data, dtype=np.float32),
            imagej=True,
            metadata=metadata,
            resolution=resolution,
        )


def write_ome_tiff(
    path: Path,
    data: np.ndarray,
    axes: str,
    channel_names: list[str],
    physical: ImageMetadata | None = None,
) -> None:
    """Write float32 data as an OME-TIFF, atomically: axes ("CYX", "ZCYX", "TCYX"), channel
    names and physical pixel sizes in its OME-XML, which bioio and Fiji's Bio-Formats read."""
    if data.ndim != len(axes):
        raise ValueError(f"data of shape {data.shape} does not match axes {axes}")
    physical = physical or ImageMetadata()
    metadata: dict[str, object] = {"axes": axes, "Channel": {"Name": list(channel_names)}}
    if physical.pixel_size is not None:
        metadata.update(
            PhysicalSizeY=physical.pixel_size[0],
            PhysicalSizeX=physical.pixel_size[1],
            PhysicalSizeYUnit="\u00b5m",
            PhysicalSizeXUnit="\u00b5m",
        )
    if physical.z_spacing is not None and "Z" in axes:
        metadata.update(PhysicalSizeZ=physical.z_spacing, PhysicalSizeZUnit="\u00b5m")
    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(
            tmp, np.ascontiguousarray(data, dtype=np.float32), ome=True, metadata=metadata
        )
