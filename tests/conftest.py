"""Shared fixtures: a tiny simulated data set and a tiny trained checkpoint, built once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hazematching.config import SimulationConfig
from hazematching.data.simulate import simulate
from hazematching.training.loop import TrainResult, train
from hazematching.uncertainty.calibrate import calibrate
from tests.helpers import EVAL_SAMPLING, EXAMPLES, run, tiny_train_config


@pytest.fixture(scope="session")
def main_command(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's main command, run once: the bundled model on the first example image.

    Returns the output folder (`widefield_1.tif`, `.png`, `predict.json`).
    """
    out = tmp_path_factory.mktemp("main") / "out"
    done = run("predict", EXAMPLES / "widefield_1.tif", "--out", out, "--no-progress")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 simulated pairs of 48 px in train/val/test folders."""
    out = tmp_path_factory.mktemp("sim") / "data"
    simulate(out, SimulationConfig(pairs=16, size=48, seed=3), progress=False)
    return out


@pytest.fixture(scope="session")
def trained(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A checkpoint of the tiny network after a few steps."""
    run = tmp_path_factory.mktemp("run") / "run"
    return train(sim_dir, run, tiny_train_config(), progress=False)


@pytest.fixture(scope="session")
def dataset_model(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The tiny checkpoint's recipe normalised by the training set's statistics (`dataset`)."""
    run_dir = tmp_path_factory.mktemp("dataset") / "run"
    return train(sim_dir, run_dir, tiny_train_config(normalization="dataset"), progress=False)


@pytest.fixture(scope="session")
def calibrated_checkpoint(
    trained: TrainResult, sim_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the tiny checkpoint, calibrated on the validation split at EVAL_SAMPLING."""
    path = tmp_path_factory.mktemp("evalcal") / "best.pt"
    shutil.copyfile(trained.best, path)
    calibrate(path, sim_dir, sampling=EVAL_SAMPLING, bins=4, progress=False)
    return path
