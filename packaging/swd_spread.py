"""How much the SWD of the bundled model's report depends on its random parts.

`hazematching evaluate` reports one SWD per method, computed with seed 0 for the neighbourhood
positions and projection directions, on the first posterior sample. This script repeats it for
several SWD seeds and several samples, for the bundled model's run and the U-Net baseline of
a build, so that the difference between the two can be set against the spread. Writes JSON.

Usage: python packaging/swd_spread.py WORK_DIR OUT.json [--run reflow] [--samples 4] [--seeds 10]
(WORK_DIR as in build_default_model.sh; the test pairs are WORK_DIR/heldout/test.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hazematching.config import SamplingConfig
from hazematching.data.dataset import load_pairs
from hazematching.evaluation.restorers import load_restorer
from hazematching.fileio import write_json
from hazematching.metrics.similarity import percentile_normalize
from hazematching.metrics.swd import SwdSettings, swd


def _spread(targets: list[np.ndarray], images: list[np.ndarray], seeds: int) -> dict:
    values = [swd(targets, images, SwdSettings(seed=seed))["mean"] for seed in range(seeds)]
    return {"values": values, "mean": float(np.mean(values)), "sd": float(np.std(values))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None, help="default: the model's own")
    parser.add_argument("--run", default="reflow", help="run folder of the model in WORK_DIR")
    args = parser.parse_args()

    pairs = load_pairs(args.work / "heldout" / "test")
    targets = [percentile_normalize(t) for t in pairs.targets]
    sampling = SamplingConfig(samples=args.samples, steps=args.steps, seed=0)
    flow = load_restorer(args.work / args.run, sampling)
    samples = [flow.run(hazy).samples for hazy in pairs.inputs]
    result = {
        "test_pairs": len(targets),
        "run": args.run,
        "model": flow.description,
        "swd_seeds": list(range(args.seeds)),
        "model_samples": [
            _spread(targets, [percentile_normalize(s[k]) for s in samples], args.seeds)
            for k in range(args.samples)
        ],
    }
    if (args.work / "unet" / "best.pt").is_file():  # the baseline, when the build has one
        unet = load_restorer(args.work / "unet")
        outputs = [percentile_normalize(unet.run(h).mmse) for h in pairs.inputs]
        result["unet"] = _spread(targets, outputs, args.seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    for k, entry in enumerate(result["model_samples"]):
        print(f"sample {k}: SWD {entry['mean']:.4f} +- {entry['sd']:.4f}", end="; ")
    if "unet" in result:
        print(f"U-Net: {result['unet']['mean']:.4f} +- {result['unet']['sd']:.4f}", end="")
    print(f" ({args.seeds} SWD seeds)")


if __name__ == "__main__":
    main()
