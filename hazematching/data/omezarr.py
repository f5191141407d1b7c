"""OME-Zarr input and output: the field's format for images too large for memory.

Images are read lazily as dask arrays (the full-resolution level of the multiscale pyramid), so
a 30000 x 30000 px scan is never loaded at once; results are written as a new OME-Zarr image
with channels (mmse, std [, samples]) and the input's pixel scale, through a temporary folder
renamed into place when complete (replacing an earlier result), so a crash never leaves a
half-written image.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HazeMatchingError
from ..fileio import give_normal_mode

SPATIAL = ("y", "x")


@dataclass(frozen=True)
class ZarrImage:
    """A lazily read single-channel image: `data` (planes, Y, X) and its axes' pixel sizes."""

    data: object  # dask.array.Array
    scale: dict[str, float]


def is_ome_zarr(path: Path) -> bool:
    """Whether `path` is a folder that looks like a Zarr store (v2 or v3 metadata)."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in ("zarr.json", ".zattrs"))


def read_ome_zarr(path: Path) -> ZarrImage:
    """The full-resolution level of the first image in an OME-Zarr store, as (planes, Y, X).

    Axes t, c and z of size 1 are dropped, z becomes the planes; anything else (several
    channels or time points) is refused with the axes found, as for TIFFs.
    """
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path = Path(path)
    location = parse_url(str(path))
    if location is None:
        raise HazeMatchingError("not an OME-Zarr store", path)
    nodes = [node for node in Reader(location)() if node.data]
    if not nodes:
        raise HazeMatchingError("OME-Zarr store without image data", path)
    node = nodes[0]
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in node.metadata.get("axes", [])]
    data = node.data[0]
    if len(axes) != data.ndim:
        axes = list("tczyx"[-data.ndim :])
    if axes[-2:] != list(SPATIAL):
        raise HazeMatchingError(f"OME-Zarr axes {''.join(axes)} do not end in y, x", path)
    extra = [(name, size) for name, size in zip(axes[:-2], data.shape[:-2], strict=True)]
    for name, size in extra:
        if name != "z" and size != 1:
            raise HazeMatchingError(
                f"OME-Zarr image with {size} {name} (axes {''.join(axes)}); give one "
                "single-channel image (planes along z only)",
                path,
            )
    index = tuple(slice(None) if name == "z" else 0 for name, _ in extra)
    data = data[index]
    if data.ndim == 2:
        data = data[None]
    if not np.issubdtype(data.dtype, np.number):
        raise HazeMatchingError(f"OME-Zarr image of dtype {data.dtype} is not numeric", path)
    transforms = node.metadata.get("coordinateTransformations") or [[]]
    scales = [t["scale"] for t in transforms[0] if t.get("type") == "scale"]
    scale = dict(zip(axes, scales[0], strict=True)) if scales else {}
    return ZarrImage(data, {name: float(value) for name, value in scale.items() if name != "c"})


def _is_result(path: Path) -> bool:
    """Whether `path` is an OME-Zarr image this toolkit wrote (which a new result may replace)."""
    import zarr

    try:
        return "hazematching" in zarr.open_group(str(path), mode="r").attrs
    except Exception:  # not a Zarr group at all
        return False


@contextlib.contextmanager
def _atomic_folder(path: Path) -> Iterator[Path]:
    """A temporary folder next to `path`, renamed onto it if the block succeeds.

    An earlier result at `path` is replaced only then; anything else there is refused.
    """
    path = Path(path)
    if path.exists() and not _is_result(path):
        raise HazeMatchingError(
            "already exists and is not a HazeMatching result; choose a new output path", path
        )
    if not path.parent.is_dir():
        raise HazeMatchingError("output folder does not exist", path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        give_normal_mode(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            path.rename(old / path.name)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def ome_zarr_output(
    path: Path,
    shape: tuple[int, ...],
    channel_names: list[str],
    scale: dict[str, float] | None = None,
    chunk: int = 512,
) -> Iterator[object]:
    """A new OME-Zarr image of float32 (C, Y, X) or (C, Z, Y, X) `shape`, filled by the caller.

    Yields the zarr array of its one resolution level (chunks of one channel and plane, `chunk`
    px); the image appears at `path` only when the block ends without an error. The channel
    names are stored in the group's `hazematching` attributes.
    """
    import dask.array as da
    import zarr
    from ome_zarr.writer import write_image

    axes = "cyx" if len(shape) == 3 else "czyx"  # OME-NGFF: channels before space
    if shape[0] != len(channel_names):
        raise ValueError(f"{len(channel_names)} channel names for data of shape {shape}")
    scale = scale or {}
    pixel = {name: scale.get(name, 1.0) if name != "c" else 1.0 for name in axes}
    chunks = tuple(1 if name in "zc" else chunk for name in axes)
    with _atomic_folder(Path(path)) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        write_image(  # the metadata and an empty array; the caller writes the values
            da.zeros(shape, chunks=chunks, dtype=np.float32),
            group,
            axes=axes,
            scale_factors=(),  # one resolution level: the result, not a pyramid
            scale=pixel,
            storage_options={"chunks": chunks},
            compute=False,
        )
        group.attrs["hazematching"] = {"channels": list(channel_names)}
        (level,) = list(group.array_keys())
        yield group[level]
