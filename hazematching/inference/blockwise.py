"""Large images block by block, on this process or on a Dask cluster.

OME-Zarr images always take this path, TIFF planes when they have more pixels than
`BlockConfig.above`. Each block of a plane is one task: read the block's grown region (a worker
reads OME-Zarr blocks from the store itself, so the image never passes through one process),
sample it with the model loaded once per process, starting from the whole image's noise at the
block's position. A second task per block blends its neighbours' results over its core
(`inference/blocks.py`), and this process writes each finished core into the output. Blocks are
submitted row by row, at most three rows of block results are alive at once, so memory per
worker is bounded by one block and memory of the cluster by three rows of blocks, whatever the
size of the image.

Packages sample whole images only (their noise starts at the image's corner); a package that
ships the checkpoint it was exported from (`training/best.pt`, as the bundled model does) is
sampled block-wise through that checkpoint, at the package's own sampling settings.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tifffile

from ..config import BlockConfig, OutputFormat
from ..data.metadata import ImageMetadata
from ..data.microscopy import is_microscopy_file, plane_shape
from ..data.normalization import IntensityMap
from ..data.omezarr import ZarrImage, is_ome_zarr, ome_zarr_output, read_ome_zarr
from ..errors import HazeMatchingError
from ..fileio import file_stamp
from .blocks import BlockGrid, assemble
from .planes import Block, no_progress
from .results import write_result
from .runner import BlockSource, Runner, cached_runner

#: OME-Zarr results are named after the input with this suffix.
ZARR_OUTPUT_SUFFIX = ".ome.zarr"


@dataclass(frozen=True)
class Region:
    """The pixels of one block's grown region, read where the block is sampled.

    Either `array` (already in memory) or the OME-Zarr store at `store`, plane `plane`,
    rows/cols [start, stop).
    """

    rows: tuple[int, int]
    cols: tuple[int, int]
    array: np.ndarray | None = None
    store: str | None = None
    plane: int = 0

    def read(self) -> np.ndarray:
        """The region as float32 (rows, cols)."""
        if self.array is not None:
            return np.asarray(self.array, dtype=np.float32)
        store = Path(str(self.store))
        metadata = ";".join(file_stamp(p) for p in sorted(store.iterdir()) if p.is_file())
        data = _zarr_data(str(store), metadata)
        return np.asarray(
            data[self.plane, slice(*self.rows), slice(*self.cols)].compute(), dtype=np.float32
        )


@functools.lru_cache(maxsize=4)
def _zarr_data(store: str, stamp: str) -> Any:
    """The lazily read image of a store, opened once per process (`stamp`: of its top-level
    metadata files, so a store written anew at the same path is opened anew)."""
    return read_ome_zarr(Path(store)).data


def sample_block(
    blocks: BlockSource, device: str, source: str, intensities: IntensityMap, region: Region
) -> np.ndarray:
    """One block task: its grown region's result (C, rows, cols) in target intensities, the
    region read from `source` (named in errors), mapped with its whole plane's `intensities`."""
    data = region.read()
    if not np.isfinite(data).all():
        raise HazeMatchingError(
            f"contains NaN or infinite values (rows {region.rows[0]}-{region.rows[1]}, "
            f"columns {region.cols[0]}-{region.cols[1]})",
            source,
        )
    # blocks report progress as whole blocks, not tiles
    block = Block((region.rows[0], region.cols[0]), intensities)
    return block_runner(blocks, device).run(data[None], no_progress, block)[0]


def block_runner(blocks: BlockSource, device: str) -> Runner:
    """The checkpoint that samples the blocks, loaded once per process (`cached_runner`)."""
    if blocks.checkpoint is None:
        raise HazeMatchingError(str(blocks.refusal))
    return cached_runner(blocks.checkpoint, blocks.sampling, device)


class Executor(Protocol):
    """What block-wise prediction needs of a Dask client: submit a call, get its future.

    Futures among the arguments (also inside a dict) are resolved to their results first.
    """

    def submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


class InProcess:
    """An `Executor` that runs each call at once in this process (no cluster given)."""

    def submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        kwargs.pop("pure", None)
        future: Future = Future()
        future.set_result(function(*[_resolved(a) for a in args], **kwargs))
        return future


def _resolved(value: Any) -> Any:
    if isinstance(value, Future):
        return value.result()
    if isinstance(value, dict):
        return {key: _resolved(item) for key, item in value.items()}
    return value


def sample_plane(
    executor: Executor,
    task: Callable[[Region], np.ndarray],
    grid: BlockGrid,
    region: Callable[[tuple[int, int], tuple[int, int]], Region],
) -> Iterator[tuple[tuple[slice, slice], np.ndarray]]:
    """Sample one plane block by block; yields (core slices, result over the core) in order.

    `task(region)` samples one block (a picklable callable, such as `sample_block` with its
    settings bound); `region(rows, cols)` says where it reads a grown region. Block rows are
    submitted one row ahead of the row being blended, and results of rows no longer needed
    are released.
    """
    rows, cols = grid.shape
    results: dict[tuple[int, int], Any] = {}

    def submit_row(i: int) -> None:
        for j in range(cols):
            grown = grid.block_at((i, j)).grown
            results[(i, j)] = executor.submit(task, region(*grown), pure=False)

    submit_row(0)
    for i in range(rows):
        if i + 1 < rows:
            submit_row(i + 1)
        blended = []
        for j in range(cols):
            needed = {index: results[index] for index in grid.neighbours((i, j))}
            blended.append(executor.submit(assemble, grid, (i, j), needed, pure=False))
        for j, future in enumerate(blended):
            block = grid.block_at((i, j))
            yield block.slices(block.core), future.result()
        for j in range(cols):
            results.pop((i - 1, j), None)


def whole_plane_map(runner: Runner, image: np.ndarray | ZarrImage, z: int) -> IntensityMap:
    """The intensity map of plane `z` as a whole, computed once for all its blocks; a per-image
    normalisation reads the whole plane for it (once, in this process)."""
    normalization = runner.normalization
    if normalization is None:
        raise HazeMatchingError("block-wise prediction needs a checkpoint's normalisation")
    if not normalization.reads_image:
        return normalization.intensity_map()
    plane = image.data[z].compute() if isinstance(image, ZarrImage) else image[z]
    return normalization.intensity_map(np.asarray(plane, dtype=np.float32))


def intensity_sample(image: np.ndarray | ZarrImage, most: int = 1 << 22) -> np.ndarray:
    """The pixels the intensity guard looks at: all of a TIFF array, an even grid of at most
    about `most` of an OME-Zarr image's (read lazily, so a huge image is not read whole)."""
    if not isinstance(image, ZarrImage):
        return image
    planes, height, width = image_shape(image)
    step = max(1, math.ceil(math.sqrt(planes * height * width / most)))
    return np.asarray(image.data[:, ::step, ::step].compute(), dtype=np.float32)


def image_shape(image: np.ndarray | ZarrImage) -> tuple[int, int, int]:
    """(planes, Y, X) of a TIFF array or an OME-Zarr image."""
    planes, height, width = image.data.shape if isinstance(image, ZarrImage) else image.shape
    return planes, height, width


def block_count(image: np.ndarray | ZarrImage, config: BlockConfig) -> int:
    """Blocks of all planes of an image (for progress bars)."""
    planes, height, width = image_shape(image)
    rows, cols = BlockGrid(height, width, config).shape
    return planes * rows * cols


def is_large(image: np.ndarray | ZarrImage, config: BlockConfig) -> bool:
    """Whether an input takes the block path: OME-Zarr always, TIFFs above the size limit."""
    if isinstance(image, ZarrImage):
        return True
    return image.shape[-2] * image.shape[-1] > config.above


def blocks_record(config: BlockConfig, blocks: BlockSource, device: str) -> dict[str, Any]:
    """What `predict.json` records of block-wise sampling: the block settings, the checkpoint
    (a package's own, if it was given a package), its sampling and output channels."""
    runner = block_runner(blocks, device)
    return {
        **config.model_dump(mode="json"),
        "model": str(blocks.checkpoint),
        "sampling": runner.settings,
        "output_channels": runner.channel_names,
    }


def looks_large(path: Path, config: BlockConfig, scene: int | str | None = None) -> bool:
    """`is_large` from the file's header alone: OME-Zarr stores, and TIFFs or microscope files
    whose planes have more pixels than `config.above` (an unreadable file is left to the
    reader's error)."""
    if is_ome_zarr(path):
        return True
    try:
        if is_microscopy_file(path):
            shape = plane_shape(path, scene)
        else:
            with tifffile.TiffFile(path) as tiff:
                shape = tiff.series[0].shape
    except Exception:  # unreadable: the task that reads it reports the error by name
        return False
    return len(shape) >= 2 and shape[-2] * shape[-1] > config.above


def predict_large(
    executor: Executor,
    blocks: BlockSource,
    image: np.ndarray | ZarrImage,
    *,
    source: Path,
    name: str,
    out_dir: Path,
    config: BlockConfig,
    device: str,
    on_block: Callable[[int], None],
    metadata: ImageMetadata | None = None,
    output_format: OutputFormat = OutputFormat.TIFF,
) -> Path:
    """Dehaze one large image block by block into `out_dir`; returns the output's path.

    A (planes, Y, X) array (read from a TIFF or microscope file, with its `metadata`) gives
    `<name>.tif` (or `.ome.tif`) and its preview, as `predict` writes them;
    an OME-Zarr image gives the OME-Zarr image `<name>.ome.zarr` (axes CYX, or CZYX for a stack)
    with the input's pixel size, written chunk by chunk as blocks finish. `on_block(1)` is
    called per finished block. `blocks` is the model's `block_source`.
    """
    runner = block_runner(blocks, device)
    names = runner.channel_names
    planes, height, width = image_shape(image)
    grid = BlockGrid(height, width, config)

    def plane_results(z: int) -> Iterator[tuple[tuple[slice, slice], np.ndarray]]:
        intensities = whole_plane_map(runner, image, z)
        task = functools.partial(sample_block, blocks, device, str(source), intensities)

        def region(rows: tuple[int, int], cols: tuple[int, int]) -> Region:
            if isinstance(image, ZarrImage):
                return Region(rows, cols, store=str(source), plane=z)
            return Region(rows, cols, array=image[z, slice(*rows), slice(*cols)])

        for core, result in sample_plane(executor, task, grid, region):
            yield core, result
            on_block(1)

    if not isinstance(image, ZarrImage):
        stack = np.zeros((planes, len(names), height, width), np.float32)
        for z in range(planes):
            for (rows, cols), result in plane_results(z):
                stack[z, :, rows, cols] = result
        return write_result(out_dir, name, image, stack, names, metadata, output_format)
    path = out_dir / f"{name}{ZARR_OUTPUT_SUFFIX}"
    shape = (len(names), height, width) if planes == 1 else (len(names), planes, height, width)
    with ome_zarr_output(path, shape, names, image.scale, config.block) as array:
        for z in range(planes):
            for (rows, cols), result in plane_results(z):
                if planes == 1:
                    array[:, rows, cols] = result
                else:
                    array[:, z, rows, cols] = result
    return path
