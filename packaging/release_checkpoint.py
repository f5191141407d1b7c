"""Copy a checkpoint without its optimizer state: the weights, EMA weights, statistics,
configuration, history and calibration that prediction, calibration, evaluation and export use,
at half the size. Training cannot resume from the copy (Adam's moments are gone).

Usage: python packaging/release_checkpoint.py CHECKPOINT OUT
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from hazematching.model.checkpoint import load_checkpoint, save_checkpoint


def main(source: Path, out: Path) -> None:
    """Write `source` without optimizer state to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, dataclasses.replace(load_checkpoint(source), optimizer={}))
    print(f"{source} -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
