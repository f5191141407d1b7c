"""The installed `hazematching` command, run as a user would, end to end and with bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from hazematching.training.checkpoint import load_checkpoint
from tests.helpers import run


def test_end_to_end_simulate_train_predict(tmp_path: Path) -> None:
    data, runs, pred = tmp_path / "data", tmp_path / "run", tmp_path / "pred"
    done = run("simulate", data, "--pairs", 32, "--size", 64, "--seed", 0, "--no-progress")
    assert done.returncode == 0, done.stderr
    done = run(
        "train",
        data,
        "--out",
        runs,
        "--steps",
        30,
        "--patch-size",
        64,
        "--batch-size",
        4,
        "--width",
        32,
        "--channel-mult",
        "1,2",
        "--attention",
        "2",
        "--val-every",
        15,
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
        4,
        "--steps",
        20,
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
        assert out.shape == (2, 64, 64) and np.isfinite(out).all()

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
    done = run("train", data, "--out", runs, "--steps", 33, "--resume", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(runs / "last.pt").step == 33


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
    done = run(*(a.format(tmp=tmp_path) for a in args))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert message in lines[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "run" / "last.pt").exists()
