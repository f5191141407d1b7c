"""Atomic file writing: a result is either complete on disk or absent, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import HazeMatchingError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the destination folder, so the final rename is atomic on the
    same file system. On any exception the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise HazeMatchingError("output folder does not exist", path.parent)
    handle, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        give_normal_mode(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def give_normal_mode(path: Path) -> None:
    """Give `path` the permissions a plain write would: 0666 (files) or 0777 (folders) less the
    user's umask (0644/0755 under umask 022).

    Temporary files and folders are created private (0600/0700) so that nobody reads them
    half-written; a result renamed from one must not stay private, or colleagues on a shared
    server and tools running as another user could not open it.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~mask)


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write text, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _require_writable(folder: Path) -> None:
    """A one-line error unless we may create files in `folder`."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise HazeMatchingError("the output folder is not writable", folder)


def check_output_folder(path: Path) -> Path:
    """Say in one line why the output folder `path` could not be made, without making it.

    An existing file in its place, a file among its parents, or a folder we may not write to
    are refused before any work is done, so no command fails after minutes of computing, and
    a command that fails on its inputs leaves no empty folder behind.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HazeMatchingError("the output path is an existing file, not a folder", path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise HazeMatchingError(f"cannot create the output folder ({existing} is a file)", path)
    _require_writable(existing)
    return path


def output_folder(path: Path) -> Path:
    """Create the output folder `path` (and its parents) once `check_output_folder` allows it."""
    path = check_output_folder(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise HazeMatchingError(
            f"cannot create the output folder ({error.strerror or error})", path
        ) from error
    return path


def output_file(path: Path) -> Path:
    """Check that a single output file can be written at `path` (its folder exists, writable)."""
    path = Path(path)
    if path.is_dir():
        raise HazeMatchingError("the output path is an existing folder, not a file", path)
    parent = path.parent
    if not parent.is_dir():
        raise HazeMatchingError("output folder does not exist", parent)
    _require_writable(parent)
    return path


def file_stamp(path: Path) -> str:
    """Path, size and modification time of a file, or of all files of a folder (an OME-Zarr
    store, whose chunks can be rewritten in place): changes when anything in it is replaced."""
    path = Path(path)
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    states = [p.stat() for p in files]
    size = sum(state.st_size for state in states)
    latest = max((state.st_mtime_ns for state in states), default=0)
    return f"{path.resolve()}:{len(files)}:{size}:{latest}"
