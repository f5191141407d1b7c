"""OME-Zarr input and output on real stores: lazy reading, axes checks, atomic writing."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr
from ome_zarr.writer import write_image

from hazematching.data.omezarr import is_ome_zarr, ome_zarr_output, read_ome_zarr
from hazematching.errors import HazeMatchingError


def _store(path: Path, data: np.ndarray, axes: str, scale: dict[str, float]) -> Path:
    write_image(
        data, zarr.open_group(str(path), mode="w"), axes=axes, scale_factors=(), scale=scale
    )
    return path


def _write(path: Path, values: np.ndarray, scale: dict[str, float] | None = None) -> Path:
    """A result written block by block, as block-wise prediction writes one."""
    with ome_zarr_output(path, values.shape, ["mmse", "std"], scale, 64) as array:
        for row in range(0, values.shape[1], 64):
            array[:, row : row + 64] = values[:, row : row + 64]
    return path


def test_a_written_result_reads_back_with_its_values_scale_and_channels(tmp_path: Path) -> None:
    values = np.random.default_rng(0).random((2, 100, 120)).astype(np.float32)
    path = _write(tmp_path / "out.zarr", values, {"y": 0.1, "x": 0.1})
    group = zarr.open_group(str(path))
    assert group.attrs["hazematching"] == {"channels": ["mmse", "std"]}
    (level,) = list(group.keys())
    assert np.array_equal(np.asarray(group[level]), values) and group[level].chunks == (1, 64, 64)
    assert is_ome_zarr(path) and not is_ome_zarr(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]  # no temporary folder left
    # a new result replaces an earlier one; anything else at the path is refused
    _write(path, values * 2, {"y": 0.1, "x": 0.1})
    assert np.array_equal(np.asarray(zarr.open_group(str(path))[level]), values * 2)
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]
    foreign = tmp_path / "foreign.zarr"
    foreign.mkdir()
    with pytest.raises(HazeMatchingError, match="not a HazeMatching result"):
        _write(foreign, values)
    # a failure while writing leaves the earlier result as it was, and no temporary folder
    with pytest.raises(RuntimeError), ome_zarr_output(path, values.shape, ["mmse", "std"]):
        raise RuntimeError("interrupted")
    assert np.array_equal(np.asarray(zarr.open_group(str(path))[level]), values * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.zarr", "out.zarr"]


def test_reading_is_lazy_and_keeps_planes_and_pixel_size(tmp_path: Path) -> None:
    stack = np.random.default_rng(1).random((3, 40, 50)).astype(np.float32)
    image = read_ome_zarr(_store(tmp_path / "s.zarr", stack, "zyx", {"z": 0.3, "y": 0.1, "x": 0.1}))
    assert isinstance(image.data, da.Array) and image.data.shape == (3, 40, 50)
    assert np.array_equal(image.data.compute(), stack)
    assert image.scale == {"z": 0.3, "y": 0.1, "x": 0.1}
    plane = read_ome_zarr(_store(tmp_path / "p.zarr", stack[0], "yx", {"y": 0.2, "x": 0.2}))
    assert plane.data.shape == (1, 40, 50)


def test_bad_stores_are_one_line_errors_naming_them(tmp_path: Path) -> None:
    two = _store(tmp_path / "c.zarr", np.zeros((2, 32, 32), np.float32), "cyx", {})
    with pytest.raises(HazeMatchingError, match="2 c") as error:
        read_ome_zarr(two)
    assert str(two) in str(error.value) and "\n" not in str(error.value)
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    with pytest.raises(HazeMatchingError, match="without image data"):
        read_ome_zarr(tmp_path / "empty.zarr")
    with pytest.raises(HazeMatchingError):
        read_ome_zarr(tmp_path / "missing.zarr")
