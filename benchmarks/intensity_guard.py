"""Where should the intensity guard of dataset-normalised models fire? Counts per margin.

For a dataset-normalised checkpoint with a recorded training input range, every test image is
asked whether its 0.1-99.9th percentiles lie within the range widened by MARGIN times its
width, for several margins: held-out pairs simulated like the training data (randomised, another
seed: should pass), the same pairs as 8-bit, 12-bit (baseline 100) and 16-bit cameras record
them (`data/camera.py`), and real widefield images (their channels as planes). The chosen
margin (`GUARD_MARGIN` in `data/normalization.py`) should pass every in-range image and flag
every image whose units differ from the training data's by far. Results go to JSON.

    python benchmarks/intensity_guard.py --model model_zoo/hazematching-simulated \
        --real ../shared/data/real --out benchmarks/results/intensity_guard.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from hazematching.config import RandomizationConfig, SimulationConfig
from hazematching.data.camera import Camera, RankedPercentile
from hazematching.data.dataset import load_pairs, split_folder
from hazematching.data.normalization import GUARD_MARGIN, DatasetNormalization
from hazematching.data.simulate import simulate
from hazematching.model.checkpoint import load_model_checkpoint

MARGINS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def recordings(hazy: np.ndarray) -> dict[str, np.ndarray]:
    """The held-out input as simulated and as three cameras record it."""
    bright = RankedPercentile.of(hazy, 99.8).value()
    saturating = RankedPercentile.of(hazy, 99.9).value()
    cameras = {
        "8-bit": Camera(0.8 * 255 / bright, 0.0, 255.0),
        "12-bit, baseline 100": Camera(0.5 * (4095 - 100) / bright, 100.0, 4095.0),
        "16-bit, 0.1 % saturated": Camera((65535 - 100) / saturating, 100.0, 65535.0),
    }
    return {"in range": hazy, **{name: c.record(hazy) for name, c in cameras.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--real", type=Path, required=True, help="folder of real widefield TIFFs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=101)
    args = parser.parse_args()
    norm = load_model_checkpoint(args.model).normalization
    if not isinstance(norm, DatasetNormalization) or norm.input_range is None:
        raise SystemExit(f"{args.model}: no dataset normalisation with a recorded input range")
    ends: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="hazematching-guard-") as tmp:
        config = SimulationConfig(
            pairs=args.pairs,
            size=128,
            seed=args.seed,
            split=(0.0, 0.5, 0.5),
            randomize=RandomizationConfig(),
        )
        simulate(Path(tmp), config, progress=False)
        for split in ("val", "test"):
            for hazy in load_pairs(split_folder(Path(tmp), split)).inputs:
                for name, image in recordings(hazy).items():
                    ends.setdefault(name, []).append(norm.input_percentiles(image))
    for path in sorted(args.real.glob("*.tif")):
        planes = tifffile.imread(path).astype(np.float32)  # every channel a widefield plane
        for plane in planes.reshape(-1, *planes.shape[-2:]):
            ends.setdefault("real widefield images", []).append(norm.input_percentiles(plane))
    low, high = norm.input_range
    width = high - low
    flagged = {
        str(margin): {
            name: sum(not (low - margin * width <= a and b <= high + margin * width) for a, b in e)
            for name, e in ends.items()
        }
        for margin in MARGINS
    }
    record = {
        "what": __doc__.split("\n\n")[0],
        "model": str(args.model),
        "training_input_range": [low, high],
        "images": {name: len(e) for name, e in ends.items()},
        "percentiles_in_network_units": {
            name: {
                "lowest_0.1": float(min(a for a, _ in e)),
                "highest_99.9": float(max(b for _, b in e)),
                "lowest_99.9": float(min(b for _, b in e)),
            }
            for name, e in ends.items()
        },
        "flagged_per_margin": flagged,
        "chosen_margin": GUARD_MARGIN,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(flagged, indent=1))


if __name__ == "__main__":
    main()
