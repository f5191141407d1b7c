"""Helpers shared by the test modules (tests never import each other).

`run` calls the installed `hazematching` command as a user would; `tiny_train_config` is a
network and budget small enough for a unit test on 2 CPU cores.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from hazematching.config import NetworkConfig, TrainConfig

EXE = shutil.which("hazematching") or str(Path(sys.executable).parent / "hazematching")
TINY_NETWORK = NetworkConfig(model_channels=32, channel_mult=(1, 2, 2, 2), attention_downsample=())


def run(*args: object) -> subprocess.CompletedProcess[str]:
    """The `hazematching` command with these arguments; output captured as text."""
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=600)


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
