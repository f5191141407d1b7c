"""`predict --workers/--scheduler` on a real Dask LocalCluster: the single-process results,
no loss when a worker dies mid-run, complete outputs skipped on a re-run, failures by name."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from hazematching.cluster.batch import COMPLETE, predict_distributed
from hazematching.cluster.connect import dask_client
from hazematching.config import BlockConfig, SamplingConfig
from hazematching.errors import HazeMatchingError
from hazematching.inference.predict import predict
from tests.helpers import PIXEL_UM, microscope_stack, run, write_czi

SAMPLING = SamplingConfig(samples=2, steps=2, seed=0)


@pytest.fixture(scope="module")
def images(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight single-channel widefield TIFFs (the simulated pairs' input channel)."""
    folder = tmp_path_factory.mktemp("inputs")
    paths = []
    for source in sorted(sim_dir.glob("*/pair_*.tif"))[:8]:
        path = folder / source.name
        tifffile.imwrite(path, tifffile.imread(source)[1])
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def client():
    """Two worker processes with one thread each."""
    with dask_client(workers=2) as connected:
        yield connected


@pytest.fixture(scope="module")
def single_process(trained, images: list[Path], tmp_path_factory) -> Path:
    """The same images through single-process `predict`, at the workers' one thread."""
    out = tmp_path_factory.mktemp("single") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predict(trained.best, images, out, SAMPLING, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out


def _assert_same_outputs(folder: Path, reference: Path, names: list[str]) -> None:
    for name in names:
        ours = tifffile.imread(folder / f"{name}.tif")
        theirs = tifffile.imread(reference / f"{name}.tif")
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), name


def test_cluster_outputs_equal_the_single_process_ones_bit_for_bit(
    client, trained, images: list[Path], single_process: Path, tmp_path: Path
) -> None:
    result = predict_distributed(trained.best, images, tmp_path, client, SAMPLING, progress=False)
    assert not result.failed and not result.skipped and len(result.written) == len(images)
    _assert_same_outputs(tmp_path, single_process, [p.stem for p in images])
    record = json.loads((tmp_path / "predict.json").read_text())
    assert record["outputs"] == sorted(f"{p.stem}.tif" for p in images)
    assert record["sampling"]["samples"] == 2 and record["failed"] == {}
    # a re-run finds every output complete and leaves the files alone
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.tif")}
    again = predict_distributed(trained.best, images, tmp_path, client, SAMPLING, progress=False)
    assert len(again.skipped) == len(images) and not again.written
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.tif")}
    # a damaged output is recomputed, and only it
    damaged = tmp_path / f"{images[0].stem}.tif"
    damaged.write_bytes(damaged.read_bytes()[:100])
    third = predict_distributed(trained.best, images, tmp_path, client, SAMPLING, progress=False)
    assert [p.stem for p in third.written] == [images[0].stem]
    _assert_same_outputs(tmp_path, single_process, [p.stem for p in images])
    # other sampling settings or a changed input file do not count as done either
    other = SamplingConfig(samples=2, steps=2, seed=1)
    fourth = predict_distributed(trained.best, images[:2], tmp_path, client, other, progress=False)
    assert len(fourth.written) == 2
    os.utime(images[2], ns=(time.time_ns(), time.time_ns()))
    fifth = predict_distributed(
        trained.best, images[2:], tmp_path, client, SAMPLING, progress=False
    )
    assert [p.stem for p in fifth.written] == [images[2].stem]


def test_killing_a_worker_mid_run_loses_nothing(
    client, trained, images: list[Path], single_process: Path, tmp_path: Path
) -> None:
    pids = list(client.run(os.getpid).values())
    killed: list[int] = []

    def kill_after_first_output() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            if any((tmp_path / COMPLETE).glob("*.json")):
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_first_output)
    watcher.start()
    result = predict_distributed(trained.best, images, tmp_path, client, SAMPLING, progress=False)
    watcher.join()
    assert killed, "no output appeared to kill a worker after"
    remaining = len([p for p in (tmp_path / COMPLETE).glob("*.json")])
    assert not result.failed and remaining == len(images)
    _assert_same_outputs(tmp_path, single_process, [p.stem for p in images])
    leftovers = [p.name for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert leftovers == []
    client.wait_for_workers(2, timeout=120)  # the nanny restarts the killed worker


def test_a_failing_image_is_reported_by_name_while_the_others_finish(
    client, trained, images: list[Path], tmp_path: Path
) -> None:
    bad = tmp_path / "inputs" / "broken.tif"
    bad.parent.mkdir()
    data = tifffile.imread(images[0])
    data[3, 3] = np.nan
    tifffile.imwrite(bad, data)
    missing = tmp_path / "inputs" / "missing.tif"
    out = tmp_path / "out"
    result = predict_distributed(
        trained.best, [*images[:2], bad, missing], out, client, SAMPLING, progress=False
    )
    assert sorted(result.failed) == ["broken", "missing"]
    assert "NaN" in result.failed["broken"] and "broken.tif" in result.failed["broken"]
    assert "missing.tif" in result.failed["missing"]
    assert all("\n" not in message for message in result.failed.values())
    assert len(result.written) == 2 and not (out / "broken.tif").exists()
    assert json.loads((out / "predict.json").read_text())["failed"] == result.failed


def test_each_worker_loads_the_model_once_and_the_environment_is_given_back(
    trained, images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a run of eight images on fresh workers, each worker that worked holds one model,
    under this run's settings: the model is not reloaded per image. Closing the local cluster
    gives back the environment its nannies changed (OMP_NUM_THREADS=1 would otherwise slow, and
    change the float results of, every program this process starts afterwards)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)  # the module's cluster has set them in here
    before = dict(os.environ)
    with dask_client(workers=2) as fresh:
        predict_distributed(trained.best, images, tmp_path, fresh, SAMPLING, progress=False)

        def loaded() -> list[tuple[str, str, str]]:
            from hazematching.inference import runner

            return sorted(runner._LOADED)

        held = [keys for keys in fresh.run(loaded).values() if keys]
    assert held and all(len(keys) == 1 for keys in held)
    assert len({keys[0] for keys in held}) == 1
    assert dict(os.environ) == before


def test_a_large_image_spreads_its_blocks_over_the_cluster(
    client, trained, images: list[Path], tmp_path: Path
) -> None:
    """An OME-Zarr image next to a small TIFF: its blocks run on the workers, the result equals
    the single-process block-wise one bit for bit, and a re-run skips both."""
    import zarr
    from ome_zarr.writer import write_image

    plane = np.concatenate([tifffile.imread(p) for p in images[:2]], axis=1)  # 48 x 96 px
    store = tmp_path / "scan.ome.zarr"
    write_image(plane, zarr.open_group(str(store), mode="w"), axes="yx", scale_factors=())
    blocks = BlockConfig(block=32, halo=8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (here,) = predict(
            trained.best, [store], tmp_path / "here", SAMPLING, progress=False, blocks=blocks
        )
    finally:
        torch.set_num_threads(threads)
    inputs = [store, images[2]]
    result = predict_distributed(
        trained.best, inputs, tmp_path / "out", client, SAMPLING, progress=False, blocks=blocks
    )
    assert not result.failed
    assert sorted(p.name for p in result.written) == [f"{images[2].stem}.tif", "scan.ome.zarr"]
    ours = zarr.open_group(str(tmp_path / "out" / "scan.ome.zarr"))
    theirs = zarr.open_group(str(here))
    assert np.array_equal(np.asarray(ours["s0"]), np.asarray(theirs["s0"]))
    # both records name the checkpoint, sampling and channels the blocks were sampled with
    blocks_here = json.loads((tmp_path / "here" / "predict.json").read_text())["blocks"]
    blocks_there = json.loads((tmp_path / "out" / "predict.json").read_text())["blocks"]
    assert blocks_there == blocks_here and blocks_here["model"] == str(trained.best)
    again = predict_distributed(
        trained.best, inputs, tmp_path / "out", client, SAMPLING, progress=False, blocks=blocks
    )
    assert len(again.skipped) == 2 and not again.written
    # values rewritten in place (one chunk of the store, its folder untouched) count as new
    zarr.open_group(str(store))["s0"][:8, :8] = 0
    changed = predict_distributed(
        trained.best, inputs, tmp_path / "out", client, SAMPLING, progress=False, blocks=blocks
    )
    assert [p.name for p in changed.written] == ["scan.ome.zarr"] and len(changed.skipped) == 1
    ours = zarr.open_group(str(tmp_path / "out" / "scan.ome.zarr"))
    assert not np.array_equal(np.asarray(ours["s0"]), np.asarray(theirs["s0"]))
    other = predict_distributed(
        trained.best,
        [store],
        tmp_path / "out",
        client,
        SAMPLING,
        progress=False,
        blocks=BlockConfig(block=48, halo=8),
    )
    assert [p.name for p in other.written] == ["scan.ome.zarr"] and not other.failed


def test_microscope_files_on_the_cluster_keep_their_channel_and_metadata(
    client, trained, sim_dir: Path, tmp_path: Path
) -> None:
    """Two CZIs, one small (one task) and one above the block limit (its blocks spread over
    the workers): a channel chosen by name, the results equal single-process `predict` bit for
    bit, with the pixel size in the TIFFs and in `predict.json`."""
    small = write_czi(tmp_path / "small.czi", microscope_stack(sim_dir, planes=1))
    wide = microscope_stack(sim_dir, planes=2)
    large = write_czi(tmp_path / "large.czi", np.concatenate([wide, wide], axis=-1))
    blocks = BlockConfig(block=32, halo=8, above=60 * 60)
    inputs = [small, large]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predict(trained.best, inputs, tmp_path / "here", SAMPLING, channel="GFP",
                progress=False, blocks=blocks)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    result = predict_distributed(trained.best, inputs, tmp_path / "out", client, SAMPLING,
                                 channel="GFP", progress=False, blocks=blocks)  # fmt: skip
    assert not result.failed and len(result.written) == 2
    _assert_same_outputs(tmp_path / "out", tmp_path / "here", ["small", "large"])
    for name in ("small", "large"):
        with tifffile.TiffFile(tmp_path / "out" / f"{name}.tif") as tif:
            numerator, denominator = tif.pages.first.tags["XResolution"].value
            assert denominator / numerator == pytest.approx(PIXEL_UM, rel=1e-5)
    record = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert [m["channel"] for m in record["input_metadata"]] == ["GFP", "GFP"]
    assert "blocks" in record  # the large one took the block path


def test_cli_on_an_existing_scheduler_exit_status_and_bad_addresses(
    client, trained, images: list[Path], tmp_path: Path
) -> None:
    address = client.scheduler.address
    done = run(
        "predict",
        trained.best,
        images[0],
        tmp_path / "missing.tif",
        "--out",
        tmp_path / "o",
        "--scheduler",
        address,
        "--samples",
        "2",
        "--steps",
        "2",
        "--no-progress",
    )
    assert done.returncode != 0
    assert "failed: missing:" in done.stderr and "1 failed" in done.stdout
    assert (tmp_path / "o" / f"{images[0].stem}.tif").is_file()
    unreachable = dask_client(scheduler="tcp://127.0.0.1:9", timeout=2)
    with pytest.raises(HazeMatchingError, match="cannot reach the Dask scheduler") as error:
        unreachable.__enter__()
    assert "\n" not in str(error.value) and "tcp://127.0.0.1:9" in str(error.value)
    for extra in (["--workers", "0"], ["--workers", "1", "--scheduler", address]):
        done = run("predict", trained.best, images[0], "--out", tmp_path / "p", *extra)
        assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()
