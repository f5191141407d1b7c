"""What every benchmark result records about where it ran, and how it is written."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch


def machine() -> dict[str, object]:
    """The processor, torch version and thread count of this run."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def write_result(path: Path, record: dict[str, object]) -> None:
    """`record` with this machine's description as indented JSON at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**record, "machine": machine()}, indent=2) + "\n")
