"""Shared fixtures: a tiny simulated data set and a tiny trained checkpoint, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazematching.config import NetworkConfig, SimulationConfig, TrainConfig
from hazematching.data.simulate import simulate
from hazematching.train import TrainResult, train

TINY_NETWORK = NetworkConfig(model_channels=32, channel_mult=(1, 2, 2, 2), attention_downsample=())


def tiny_train_config(**overrides: object) -> TrainConfig:
    """A network and budget small enough for a unit test on 2 CPU cores."""
    values: dict[str, object] = {
        "steps": 8,
        "patch_size": 32,
        "batch_size": 4,
        "val_every": 4,
        "val_patches": 4,
        "device": "cpu",
        "network": TINY_NETWORK,
    }
    values.update(overrides)
    return TrainConfig.model_validate(values)


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
