"""The installed `hazematching` command, run as a user would, end to end and with bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from hazematching.model.checkpoint import load_checkpoint
from hazematching.training.loop import TrainResult
from tests.helpers import invoke, run


def test_end_to_end_simulate_train_predict(tmp_path: Path) -> None:
    data, runs, pred = tmp_path / "data", tmp_path / "run", tmp_path / "pred"
    done = run("simulate", data, "--pairs", 16, "--size", 48, "--seed", 0, "--no-progress")
    assert done.returncode == 0, done.stderr
    done = run(
        "train",
        data,
        "--out",
        runs,
        "--steps",
        10,
        "--patch-size",
        48,
        "--batch-size",
        4,
        "--width",
        32,
        "--channel-mult",
        "1,2",
        "--attention",
        "2",
        "--val-every",
        5,
        "--seed",
        0,
        "--device",
        "cpu",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(runs / "best.pt").config.network.channel_mult == (1, 2)
    inputs = sorted((data / "test").glob("*.tif"))
    done = run(
        "predict",
        runs / "best.pt",
        *inputs,
        "--out",
        pred,
        "--samples",
        2,
        "--steps",
        4,
        "--seed",
        0,
        "--channel",
        1,
        "--device",
        "cpu",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    for path in inputs:
        with tifffile.TiffFile(pred / path.name) as tif:
            assert tif.series[0].axes == "CYX"
            out = tif.series[0].asarray()
        assert out.shape == (2, 48, 48) and np.isfinite(out).all()

    # the saved configuration can be reloaded; resuming continues the same run
    done = run(
        "train",
        data,
        "--out",
        tmp_path / "again",
        "--config",
        runs / "config.json",
        "--steps",
        2,
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    again = load_checkpoint(tmp_path / "again" / "last.pt").config
    assert again == load_checkpoint(runs / "last.pt").config.model_copy(update={"steps": 2})
    done = run("train", data, "--out", runs, "--steps", 12, "--resume", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(runs / "last.pt").step == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("predict", "{tmp}/missing.pt", "{tmp}/x.tif", "--out", "{tmp}/o"),
            "model not found",
        ),
        (("predict", "{tmp}/bad.pt", "{tmp}/gone.tif", "--out", "{tmp}/o"), "file not found"),
        (
            ("predict", "{tmp}/bad.pt", "{tmp}/x.tif", "--out", "{tmp}/o"),
            "not a readable checkpoint",
        ),
        (("train", "{tmp}", "--out", "{tmp}/run"), "x.tif: expected a pair"),
        (("train", "{tmp}/empty", "--out", "{tmp}/run"), "no image pairs found"),
        (("train", "{tmp}/nowhere", "--out", "{tmp}/run"), "data folder not found"),
        (("train", "{tmp}", "--out", "{tmp}/run", "--patch-size", "30"), "multiple of 16"),
        (("simulate", "{tmp}/sim", "--pairs", "0"), "pairs"),
        (
            ("predict", "{tmp}/bad.pt", "{tmp}/x.tif", "--out", "{tmp}/o", "--samples", "0"),
            "samples",
        ),
    ],
)
def test_bad_input_one_line_error(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "empty").mkdir()
    tifffile.imwrite(tmp_path / "x.tif", np.ones((16, 16), np.float32))
    done = invoke(*(a.format(tmp=tmp_path) for a in args))
    assert done.exit_code == 1
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.output
    assert message in lines[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "run" / "last.pt").exists()
    # refused inputs leave no empty output folder behind either
    assert not (tmp_path / "run").exists() and not (tmp_path / "sim").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("simulate", "{file}", "--pairs", "4"),
        ("train", "{data}", "--out", "{file}", "--steps", "1"),
        ("predict", "{model}", "{tif}", "--out", "{file}"),
        ("calibrate", "{model}", "{data}", "--out", "{file}"),
        ("evaluate", "{model}", "{data}", "--out", "{file}"),
        ("richardson-lucy", "{data}", "--out", "{file}"),
        ("export", "{model}", "--out", "{file}/m.zip"),
        ("export", "{model}", "--out", "{folder}.zip"),
    ],
)
def test_output_path_that_is_a_file_or_folder_is_refused(
    trained: TrainResult, sim_dir: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Every command names the output path and the problem in one line before any work."""
    file = tmp_path / "taken"
    file.write_text("a file the user cares about")
    (tmp_path / "folder.zip").mkdir()
    tifffile.imwrite(tmp_path / "x.tif", np.ones((16, 16), np.float32))
    values = {
        "file": file,
        "folder": tmp_path / "folder",
        "data": sim_dir,
        "model": trained.best,
        "tif": tmp_path / "x.tif",
    }
    done = invoke(*(a.format(**values) for a in args))
    assert done.exit_code == 1
    assert isinstance(done.exception, SystemExit), done.exception  # no uncaught error
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), done.stderr
    assert any(
        what in last
        for what in (
            "the output path is an existing file",
            "the output path is an existing folder",
            "output folder does not exist",
        )
    ), last
    assert file.read_text() == "a file the user cares about"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.zip", "taken", "x.tif"]


def test_images_with_two_plane_axes_are_refused(trained: TrainResult, tmp_path: Path) -> None:
    """A TZCYX file is neither flattened into planes nor dehazed channel by channel."""
    five = tmp_path / "tzcyx.tif"
    data = np.ones((2, 3, 1, 16, 16), np.float32)
    tifffile.imwrite(five, data, imagej=True, metadata={"axes": "TZCYX"})
    done = invoke("predict", trained.best, five, "--out", tmp_path / "o", "--no-progress")
    assert done.exit_code == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {five}: has axes TZYX with shape (2, 3, 16, 16): expected a 2D image or one "
        "stack of 2D planes, found 2 axes of planes (T=2, Z=3); save one stack (e.g. one time "
        "point) per file"
    ]
    three = tmp_path / "cyx.tif"
    tifffile.imwrite(three, np.ones((3, 16, 16), np.float32), imagej=True, metadata={"axes": "CYX"})
    done = invoke("predict", trained.best, three, "--out", tmp_path / "o", "--no-progress")
    assert done.exit_code == 1 and "expected 1 channel, found 3 channel(s)" in done.stderr
    assert not (tmp_path / "o").exists()
