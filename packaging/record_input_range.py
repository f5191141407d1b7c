"""Record the intensity guard's training input range in a dataset-normalised checkpoint that
predates it, from the training pairs it was trained on.

The pairs are found again from the checkpoint's own record (the same split of DATA), and their
statistics must equal the stored ones (relative difference under 1e-9): only then is the range
written, so the range is the training data's and nothing else's. The bundled model's pairs are
made again with the `hazematching simulate` command its card names.

Usage: python packaging/record_input_range.py CHECKPOINT DATA OUT
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

from hazematching.data.dataset import load_training_data
from hazematching.data.normalization import DatasetNormalization
from hazematching.model.checkpoint import load_checkpoint, save_checkpoint


def main(source: Path, data: Path, out: Path) -> None:
    """Write `source` with the input range of its training pairs in `data` to `out`."""
    checkpoint = load_checkpoint(source)
    stored = checkpoint.normalization
    if not isinstance(stored, DatasetNormalization):
        raise SystemExit(f"{source}: not dataset-normalised; nothing to record")
    train, _ = load_training_data(data, checkpoint.config.val_fraction, checkpoint.config.seed)
    if [p.name for p in train.sources] != checkpoint.data.get("train_files"):
        raise SystemExit(f"{data}: not the training files {source} records")
    fresh = DatasetNormalization.from_images(train.inputs, train.targets)
    for name in ("input_mean", "input_std", "target_mean", "target_std"):
        if not math.isclose(getattr(fresh, name), getattr(stored, name), rel_tol=1e-9):
            raise SystemExit(f"{data}: {name} {getattr(fresh, name)} != stored one")
    save_checkpoint(out, dataclasses.replace(checkpoint, normalization=fresh))
    print(f"{source} -> {out}: training input range {fresh.input_range} (network units)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
