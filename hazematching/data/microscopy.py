"""Microscope vendor files (Zeiss CZI, Nikon ND2, Leica LIF, OME-TIFF) read through bioio.

bioio and its plugins are the optional extra `formats` (`pip install "hazematching[formats]"`);
plain TIFFs never need them. One channel of one scene is read as a stack of 2D planes, as for
TIFFs: a z-stack or a time series is a stack, a file with both, several scenes without
`--scene` or several channels without `--channel` is refused with what it holds. The pixel
size, z-spacing, channel name and scene go with the planes (`ImageMetadata`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import HazeMatchingError
from .metadata import ImageMetadata, positive

#: The format and the bioio plugin (module, pip name) that reads each kind of file, by suffix.
PLUGINS: dict[str, tuple[str, str, str]] = {
    ".czi": ("CZI", "bioio_czi", "bioio-czi"),
    ".nd2": ("ND2", "bioio_nd2", "bioio-nd2"),
    ".lif": ("LIF", "bioio_lif", "bioio-lif"),
    ".ome.tif": ("OME-TIFF", "bioio_ome_tiff", "bioio-ome-tiff"),
    ".ome.tiff": ("OME-TIFF", "bioio_ome_tiff", "bioio-ome-tiff"),
}
#: File suffixes read through bioio (OME-TIFFs are also found by their content).
SUFFIXES = frozenset(PLUGINS)
EXTRA = "pip install 'hazematching[formats]'"


def suffix_of(path: Path) -> str:
    """The suffix that names the file's format: `.ome.tif(f)` or the last suffix, lower case."""
    name = Path(path).name.lower()
    for double in (".ome.tif", ".ome.tiff"):
        if name.endswith(double):
            return double
    return Path(name).suffix


def is_microscopy_file(path: Path) -> bool:
    """Whether `path` is read through bioio: a vendor file or an OME-TIFF (by name or by an
    OME-XML description in a `.tif`)."""
    suffix = suffix_of(path)
    if suffix in SUFFIXES:
        return True
    return suffix in (".tif", ".tiff") and _is_ome_tiff(Path(path))


def _is_ome_tiff(path: Path) -> bool:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return bool(tif.is_ome)
    except Exception:  # unreadable: the TIFF reader reports it by name
        return False


def _format(path: Path) -> tuple[str, str, str]:
    """(format name, plugin module, pip name) of a microscope file (a `.tif` is an OME-TIFF)."""
    return PLUGINS.get(suffix_of(path), PLUGINS[".ome.tif"])


def _plugin(path: Path) -> ModuleType:
    """The plugin module that reads `path`; a one-line error naming the extra when bioio or the
    plugin is not installed."""
    what, module, package = _format(path)
    try:
        importlib.import_module("bioio")
    except ImportError as error:
        raise HazeMatchingError(
            f"reading {what} files needs the optional formats: {EXTRA}", path
        ) from error
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise HazeMatchingError(
            f"reading {what} files needs the bioio plugin {package}: {EXTRA}", path
        ) from error


@contextlib.contextmanager
def _quiet_bioio() -> Iterator[None]:
    """Silence bioio's log lines about failed reader attempts: the error says it in one line."""
    logger = logging.getLogger("bioio")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _reason(error: Exception) -> str:
    """The plugin's own reason a file could not be read, in one line, without bioio's
    boilerplate around it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in reversed(lines):
        if "does not support the image" in line:
            reason = line.split("does not support the image", 1)[1].lstrip(": ")
            if "'. " in reason:  # "'<path>'. <reason>"
                reason = reason.split("'. ", 1)[1]
            return reason or line
    return " ".join(lines) or type(error).__name__


def open_image(path: Path) -> Any:
    """The file as a `bioio.BioImage` (read lazily), or a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise HazeMatchingError("file not found", path)
    plugin = _plugin(path)
    from bioio import BioImage

    try:
        with _quiet_bioio():
            image = BioImage(path, reader=plugin.Reader)
            image.scenes  # noqa: B018 (parses the file's structure: corrupt files fail here)
    except Exception as error:  # plugins raise many types for corrupt or foreign files
        raise HazeMatchingError(
            f"cannot read as {_format(path)[0]} ({_reason(error)})", path
        ) from error
    return image


def select_scene(image: Any, scene: int | str | None, path: Path) -> str:
    """Set the scene (index or name) to read; a file with several needs one named."""
    scenes = [str(s) for s in image.scenes]
    if scene is None:
        if len(scenes) > 1:
            raise HazeMatchingError(
                f"has {len(scenes)} scenes ({', '.join(scenes)}); choose one with --scene "
                "(index or name)",
                path,
            )
        return scenes[0]
    if isinstance(scene, int):
        if not 0 <= scene < len(scenes):
            raise HazeMatchingError(
                f"has {len(scenes)} scene(s); scene {scene} does not exist", path
            )
        chosen = scenes[scene]
    elif scene in scenes:
        chosen = scene
    else:
        raise HazeMatchingError(f"has no scene {scene!r} (scenes: {', '.join(scenes)})", path)
    image.set_scene(chosen)
    return chosen


def select_channel(names: list[str], channel: int | str | None, path: Path) -> int:
    """The index of the channel to read (by index or name); several need one named."""
    listed = ", ".join(names)
    if channel is None:
        if len(names) > 1:
            raise HazeMatchingError(
                f"has {len(names)} channels ({listed}); choose one with --channel (index or name)",
                path,
            )
        return 0
    if isinstance(channel, int):
        if not 0 <= channel < len(names):
            raise HazeMatchingError(
                f"has {len(names)} channel(s) ({listed}); channel {channel} does not exist", path
            )
        return channel
    if channel not in names:
        raise HazeMatchingError(f"has no channel {channel!r} (channels: {listed})", path)
    return names.index(channel)


def channel_names(image: Any) -> list[str]:
    """Names of the channels of the image's current scene: the file's own, else their indices
    (when the file names none, or not as many as it has)."""
    dims = image.dims
    count = int(dims.C) if "C" in dims.order else 1
    names = [str(n) for n in (image.channel_names or [])]
    return names if len(names) == count else [str(c) for c in range(count)]


def read_microscopy(
    path: Path, channel: int | str | None = None, scene: int | str | None = None
) -> tuple[np.ndarray, ImageMetadata]:
    """One channel of one scene of a microscope file as float32 (planes, Y, X), with its
    metadata: the planes are the file's z-stack or time series (not both)."""
    return read_opened(open_image(Path(path)), Path(path), channel, scene)


def read_opened(
    image: Any, path: Path, channel: int | str | None = None, scene: int | str | None = None
) -> tuple[np.ndarray, ImageMetadata]:
    """`read_microscopy` of a file already opened with `open_image` (so that reading several
    channels parses it once); `path` names it in errors."""
    try:
        with _quiet_bioio():
            chosen = select_scene(image, scene, path)
            dims = image.dims
            sizes = {axis: int(getattr(dims, axis)) for axis in dims.order}
            names = channel_names(image)
            index = select_channel(names, channel, path)
            _require_planes(sizes, dims.order, path)
            data = image.get_image_data("TZYX", C=index)
            physical = image.physical_pixel_sizes
    except HazeMatchingError:
        raise
    except Exception as error:  # plugins raise many types for damaged data
        raise HazeMatchingError(f"cannot read its pixels ({_reason(error)})", path) from error
    if data.dtype.kind not in "uif":
        raise HazeMatchingError(
            f"unsupported pixel type {data.dtype} (need integer or float)", path
        )
    data = np.asarray(data, dtype=np.float32).reshape(-1, *data.shape[-2:])
    if not np.isfinite(data).all():
        raise HazeMatchingError("contains NaN or infinite values", path)
    y, x = positive(physical.Y), positive(physical.X)
    metadata = ImageMetadata(
        pixel_size=(y, x) if y and x else None,
        z_spacing=positive(physical.Z) if sizes.get("Z", 1) > 1 else None,
        plane_axis="T" if sizes.get("T", 1) > 1 else "Z",
        channel=names[index],
        scene=chosen,
    )
    return data, metadata


def _require_planes(sizes: dict[str, int], order: str, path: Path) -> None:
    """Refuse colour samples and more than one axis of planes (e.g. time and depth), naming the
    axes found, as TIFFs are refused."""
    shape = " ".join(f"{axis}={sizes[axis]}" for axis in order)
    if sizes.get("S", 1) > 1:
        raise HazeMatchingError(
            f"holds colour (RGB) pixels ({shape}); dehazing needs one grey channel", path
        )
    planes = [axis for axis in order if axis not in "CYXS" and sizes[axis] > 1]
    if len(planes) > 1 or (planes and planes[0] not in "TZ"):
        raise HazeMatchingError(
            f"has axes {shape}: expected a 2D image or one stack of 2D planes (Z or T), found "
            f"{', '.join(planes)}; save one stack (e.g. one time point) per file",
            path,
        )


def plane_shape(path: Path, scene: int | str | None = None) -> tuple[int, int]:
    """(Y, X) of the file's planes, from its header (the scene as `read_microscopy` picks it)."""
    image = open_image(path)
    with _quiet_bioio():
        select_scene(image, scene, path)
        return int(image.dims.Y), int(image.dims.X)
