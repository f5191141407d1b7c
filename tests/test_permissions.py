"""Results get the permissions of a plain write under the user's umask, never a temp file's 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from hazematching.data.omezarr import ome_zarr_output
from hazematching.fileio import write_text
from hazematching.training.loop import TrainResult
from tests.helpers import invoke


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the block under `mask`, restoring the previous umask afterwards."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes(folder: Path) -> dict[str, int]:
    """Permission bits of `folder` and of everything below it, by relative path."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.stat().st_mode)
    return found


@pytest.mark.parametrize(("mask", "file_mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_atomic_files_follow_the_umask(tmp_path: Path, mask: int, file_mode: int) -> None:
    with umask(mask):
        write_text(tmp_path / "result.txt", "done")
    assert stat.S_IMODE((tmp_path / "result.txt").stat().st_mode) == file_mode


@pytest.mark.parametrize(("mask", "folder_mode"), [(0o022, 0o755), (0o077, 0o700)])
def test_ome_zarr_stores_follow_the_umask(tmp_path: Path, mask: int, folder_mode: int) -> None:
    store = tmp_path / "out.ome.zarr"
    with umask(mask), ome_zarr_output(store, (2, 16, 16), ["mmse", "std"]) as array:
        array[:] = np.ones((2, 16, 16), np.float32)
    found = modes(store)
    assert found["."] == folder_mode
    assert all(m & 0o077 == 0 for m in found.values()) == (mask == 0o077)


@pytest.mark.parametrize(("mask", "others_read"), [(0o022, True), (0o077, False)])
def test_predict_outputs_are_readable_by_others_under_umask_022(
    trained: TrainResult, sim_dir: Path, tmp_path: Path, mask: int, others_read: bool
) -> None:
    image = sorted((sim_dir / "test").glob("*.tif"))[0]
    out = tmp_path / "dehazed"
    with umask(mask):
        done = invoke("predict", trained.best, image, "--out", out, "--samples", "2",
                      "--steps", "2", "--channel", "1", "--no-progress")  # fmt: skip
    assert done.exit_code == 0, done.output
    found = modes(out)
    assert len(found) >= 4  # the folder, the TIFF, the PNG and predict.json
    for name, mode in found.items():
        expected = (0o755 if name == "." else 0o644) if others_read else None
        if others_read:
            assert mode == expected, (name, oct(mode))
        else:
            assert mode & 0o077 == 0, (name, oct(mode))


def test_every_command_writes_files_others_can_read_under_umask_022(
    trained: TrainResult, sim_dir: Path, tmp_path: Path
) -> None:
    """simulate, evaluate, export and predict (as OME-TIFF) under umask 022: every file they
    write is 0644 and every folder 0755, as a plain `cp` would leave them."""
    image = sorted((sim_dir / "test").glob("*.tif"))[0]
    few = ("--samples", "2", "--steps", "2", "--no-progress")
    commands = {
        "data": ("simulate", tmp_path / "data", "--pairs", "2", "--size", "48", "--no-progress"),
        "report": ("evaluate", trained.best, sim_dir, "--out", tmp_path / "report",
                   "--figures", "1", *few),
        "package": ("export", trained.best, "--out", tmp_path / "package" / "model.zip",
                    "--samples", "2", "--steps", "1"),
        "dehazed": ("predict", trained.best, image, "--out", tmp_path / "dehazed", "--channel",
                    "1", "--format", "ome-tiff", *few),
    }  # fmt: skip
    with umask(0o022):
        (tmp_path / "package").mkdir()
        for folder, command in commands.items():
            done = invoke(*command)
            assert done.exit_code == 0, (folder, done.output)
    for folder in commands:
        found = modes(tmp_path / folder)
        assert len(found) >= 2, folder
        for name, mode in found.items():
            path = tmp_path / folder / name
            assert mode == (0o755 if path.is_dir() else 0o644), (folder, name, oct(mode))
