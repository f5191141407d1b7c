"""Connecting to a Dask cluster: a local one of N worker processes, or an existing scheduler.

Facilities run their own clusters (dask-jobqueue on SLURM, dask-gateway, Kubernetes); all of
them expose a scheduler address, which is all `--scheduler` needs. Local workers are processes
with one thread each, and Dask's nanny starts them with OMP_NUM_THREADS=1, so each uses one
core: ask for as many workers as cores (and memory for one model per worker) allow. The nanny
sets those variables in this process's own environment before each start of a worker; a local
cluster gives the environment back as it found it when it closes, so that programs started
afterwards (a subprocess, a second run in the same session) get all cores again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import HazeMatchingError

if TYPE_CHECKING:
    from distributed import Client

CONNECT_TIMEOUT_S = 10.0


@contextlib.contextmanager
def dask_client(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    timeout: float = CONNECT_TIMEOUT_S,
) -> Iterator[Client]:
    """A client of a new local cluster of `workers` processes, or of the cluster at `scheduler`.

    An unreachable scheduler is a one-line error after `timeout` seconds.
    """
    from distributed import Client, LocalCluster

    if (workers is None) == (scheduler is None):
        raise HazeMatchingError("give either a number of local workers or a scheduler address")
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as error:
            raise HazeMatchingError(
                f"cannot reach the Dask scheduler ({type(error).__name__}: {error})", scheduler
            ) from error
        with client:
            yield client
        return
    if workers < 1:
        raise HazeMatchingError(f"--workers must be at least 1, got {workers}")
    with (
        _environment_restored(),
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextlib.contextmanager
def _environment_restored() -> Iterator[None]:
    """Undo, on exit, the changes Dask's nannies make to `os.environ` (OMP_NUM_THREADS=1 and the
    like, set in the parent before each worker process starts)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
