"""Reading and writing microscopy TIFFs with validated axes.

Paired files hold two channels, channel 0 = confocal target and channel 1 = widefield input (the
layout of the paper's data). A TIFF is read as a stack of 2D planes: a 2D image, or one extra
axis (Z, T, ...) whose planes are handled as many 2D images; channels come from the axes
metadata (or the paired layouts), and files with two or more axes of planes are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from ..errors import HazeMatchingError
from ..fileio import atomic_path

TARGET_CHANNEL = 0
INPUT_CHANNEL = 1


def _read_raw(path: Path) -> tuple[np.ndarray, str]:
    """Array and tifffile axes string of the first series, with clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise HazeMatchingError("file not found", path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
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
    return data, axes


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
    data, axes = _read_raw(path)
    axis = _channel_axis(data, axes, 2 if channels is None else channels)
    require_one_plane_axis(data, axes, axis, path)
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
    return data


def read_pair(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of a 2-channel TIFF, each float32 (planes, Y, X)."""
    data = read_planes(path, channels=2)
    return data[:, INPUT_CHANNEL], data[:, TARGET_CHANNEL]


def read_single(path: Path, channel: int | None = None) -> np.ndarray:
    """One channel of a TIFF as float32 (planes, Y, X).

    Without `channel` the file must have a single channel; with it, that channel is taken from a
    multi-channel file (e.g. channel 1, the widefield input, of a paired file).
    """
    if channel is None:
        return read_planes(path, channels=1)[:, 0]
    data = read_planes(path, channels=None)
    if not 0 <= channel < data.shape[1]:
        raise HazeMatchingError(
            f"has {data.shape[1]} channel(s); channel {channel} does not exist", path
        )
    return data[:, channel]


def write_tiff(
    path: Path, data: np.ndarray, axes: str, channel_names: list[str] | None = None
) -> None:
    """Write float32 data as an ImageJ hyperstack with axes metadata, atomically.

    `axes` uses ImageJ letters in ImageJ order (e.g. "CYX", "ZCYX"); channel names become slice
    labels, which Fiji shows for each channel.
    """
    if data.ndim != len(axes):
        raise ValueError(f"data of shape {data.shape} does not match axes {axes}")
    metadata: dict[str, object] = {"axes": axes}
    if channel_names:
        planes = int(np.prod(data.shape[:-2]))
        repeats = planes // len(channel_names)
        metadata["Labels"] = list(channel_names) * repeats
    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(
            tmp, np.ascontiguousarray(data, dtype=np.float32), imagej=True, metadata=metadata
        )
