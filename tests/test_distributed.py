"""Multi-process training through torchrun and DistributedDataParallel (gloo on CPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hazematching.model.checkpoint import load_checkpoint
from hazematching.training.loop import train
from tests.helpers import tiny_train_config

ARGS = (
    "--steps",
    "4",
    "--patch-size",
    "32",
    "--batch-size",
    "4",
    "--width",
    "32",
    "--channel-mult",
    "1,2,2,2",
    "--attention",
    "",
    "--val-every",
    "2",
    "--device",
    "cpu",
)


@pytest.mark.slow
def test_two_processes_train_one_model(sim_dir: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    run = tmp_path / "ddp"
    done = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "hazematching",
            "train",
            str(sim_dir),
            "--out",
            str(run),
            *ARGS,
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = load_checkpoint(run / "last.pt")
    assert ddp.step == 4 and [h["step"] for h in ddp.history] == [2, 4]

    # one process with the same settings sees half the patches: its weights must differ
    assert ddp.config == tiny_train_config(steps=4, val_every=2, val_patches=32)
    single = load_checkpoint(train(sim_dir, tmp_path / "one", ddp.config, progress=False).last)
    assert not all(torch.equal(single.model[k], ddp.model[k]) for k in single.model)
