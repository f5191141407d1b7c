"""Training: checkpoints that load safely, exact resume, validation, clear errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from hazematching.errors import HazeMatchingError
from hazematching.model.checkpoint import load_checkpoint, save_checkpoint
from hazematching.training.loop import TrainResult, train
from tests.helpers import tiny_train_config


def test_checkpoint_contents(trained: TrainResult) -> None:
    raw = torch.load(trained.last, weights_only=True)  # plain data and tensors only
    assert raw["format"] == "hazematching-checkpoint"
    checkpoint = load_checkpoint(trained.last)
    assert checkpoint.step == 8
    assert checkpoint.config == tiny_train_config()
    assert [h["step"] for h in checkpoint.history] == [4, 8]
    assert all(h["val_loss"] > 0 for h in checkpoint.history)
    best = load_checkpoint(trained.best)
    assert best.best_val_loss == min(h["val_loss"] for h in checkpoint.history)
    assert checkpoint.data["val_files"] and checkpoint.data["train_files"]
    assert not set(checkpoint.data["val_files"]) & set(checkpoint.data["train_files"])
    history = json.loads((trained.last.parent / "history.json").read_text())
    assert history == checkpoint.history
    # the EMA copy lags behind the raw weights
    key = next(iter(checkpoint.model))
    assert not torch.equal(checkpoint.model[key], checkpoint.ema[key])


def test_resume_continues_exactly(sim_dir: Path, trained: TrainResult, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(sim_dir, run, tiny_train_config(steps=4), progress=False)
    train(sim_dir, run, tiny_train_config(steps=8), resume=True, progress=False)
    resumed, straight = load_checkpoint(run / "last.pt"), load_checkpoint(trained.last)
    assert resumed.step == straight.step == 8
    for key, value in straight.model.items():
        assert torch.equal(resumed.model[key], value), key
    for key, value in straight.ema.items():
        assert torch.equal(resumed.ema[key], value), key
    assert resumed.history == straight.history


def test_same_seed_same_weights_other_seed_differs(sim_dir: Path, tmp_path: Path) -> None:
    config = tiny_train_config(steps=2, val_every=2)
    a = load_checkpoint(train(sim_dir, tmp_path / "a", config, progress=False).last)
    b = load_checkpoint(train(sim_dir, tmp_path / "b", config, progress=False).last)
    c = load_checkpoint(
        train(sim_dir, tmp_path / "c", config.model_copy(update={"seed": 1}), progress=False).last
    )
    key = next(iter(a.model))
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    assert not torch.equal(a.model[key], c.model[key])


def test_refuses_to_overwrite_or_resume_nothing(
    sim_dir: Path, trained: TrainResult, tmp_path: Path
) -> None:
    with pytest.raises(HazeMatchingError, match="holds a previous run"):
        train(sim_dir, trained.last.parent, tiny_train_config(), progress=False)
    with pytest.raises(HazeMatchingError, match="already trained 8 steps"):
        train(sim_dir, trained.last.parent, tiny_train_config(), resume=True, progress=False)
    with pytest.raises(HazeMatchingError, match="checkpoint not found"):
        train(sim_dir, tmp_path / "new", tiny_train_config(), resume=True, progress=False)
    # a copy without optimizer state (packaging/release_checkpoint.py) predicts but cannot resume
    stripped = dataclasses.replace(load_checkpoint(trained.last), optimizer={})
    (tmp_path / "copy").mkdir()
    save_checkpoint(tmp_path / "copy" / "last.pt", stripped)
    longer = tiny_train_config(steps=16)
    with pytest.raises(HazeMatchingError, match="no optimizer state"):
        train(sim_dir, tmp_path / "copy", longer, resume=True, progress=False)


def test_patch_larger_than_images(sim_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(HazeMatchingError, match="smaller than the patch size 64"):
        train(sim_dir, tmp_path / "run", tiny_train_config(patch_size=64), progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage bytes", "not a readable checkpoint"),
        (None, "not a HazeMatching checkpoint"),
    ],
)
def test_bad_checkpoints(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "model.pt"
    if content is None:
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(HazeMatchingError, match=message):
        load_checkpoint(path)


def test_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "hazematching-checkpoint", "payload": Path("x")}, path)
    with pytest.raises(HazeMatchingError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_truncated_checkpoint(trained: TrainResult, tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    path.write_bytes(trained.last.read_bytes()[:5000])
    with pytest.raises(HazeMatchingError, match=r"cut\.pt: not a readable checkpoint"):
        load_checkpoint(path)
