"""Which normalisation should new trainings default to? Same data, same steps, three trainings.

One randomised simulated data set (train/val pairs and held-out test pairs of another seed) is
used to train small HazeMatching models for the same number of steps with
- `dataset` normalisation (the fixed training statistics, the toolkit's former behaviour),
- `per-image` normalisation,
- `per-image` normalisation with camera-like intensity augmentation,
and each is evaluated on the test pairs as simulated ("in range") and as cameras record them:
8-bit (0-255), 12-bit with a baseline of 100, and 16-bit spanning most of 0-65535 with 0.1 %
saturated pixels (`data/camera.py`; the target gets the same gain and offset). The score is the
MMSE's range-invariant PSNR gain over the input, and the dataset-normalised model's intensity
guard is asked about every condition. Results go to JSON.

    python benchmarks/normalization.py --out benchmarks/results/normalization.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from record import write_result

from hazematching.config import (
    IntensityAugmentation,
    NetworkConfig,
    RandomizationConfig,
    SamplingConfig,
    SimulationConfig,
    TrainConfig,
)
from hazematching.data.camera import Camera, RankedPercentile
from hazematching.data.dataset import load_pairs, split_folder
from hazematching.data.simulate import simulate
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler
from hazematching.metrics.distortion import range_invariant_psnr
from hazematching.model.trained import load_trained_model
from hazematching.training.loop import train


def cameras(hazy: np.ndarray) -> dict[str, Camera | None]:
    """The recording conditions of one test input, by name (None: as simulated)."""
    bright = RankedPercentile.of(hazy, 99.8).value()
    saturating = RankedPercentile.of(hazy, 99.9).value()
    return {
        "in range": None,
        "8-bit": Camera(0.8 * 255 / bright, 0.0, 255.0),
        "12-bit, offset 100": Camera(0.5 * (4095 - 100) / bright, 100.0, 4095.0),
        "16-bit, 0.1 % saturated": Camera((65535 - 100) / saturating, 100.0, 65535.0),
    }


def evaluate_model(run: Path, test: Path, sampling: SamplingConfig) -> dict[str, object]:
    """Mean RI-PSNR gain of the MMSE over the input per condition, and the guard's verdicts."""
    model = load_trained_model(run)
    sampler = build_sampler(model, sampling, torch.device("cpu"))
    pairs = load_pairs(test)
    gains: dict[str, list[float]] = {}
    warned: dict[str, int] = {}
    for hazy, target in zip(pairs.inputs, pairs.targets, strict=True):
        for name, camera in cameras(hazy).items():
            x = hazy if camera is None else camera.record(hazy)
            y = target if camera is None else camera.rescale(target)
            mmse = predict_planes(model, sampler, x[None]).mmse[0]
            gain = range_invariant_psnr(y, mmse) - range_invariant_psnr(y, x)
            gains.setdefault(name, []).append(gain)
            warned[name] = warned.get(name, 0) + (model.normalization.range_warning(x) is not None)
    return {
        "mmse_gain_db": {name: float(np.mean(values)) for name, values in gains.items()},
        "guard_warnings": warned,
        "test_pairs": len(pairs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=240)
    parser.add_argument("--test-pairs", type=int, default=24)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    args = parser.parse_args()
    sampling = SamplingConfig(samples=4, steps=10)
    variants = {
        "dataset": {"normalization": "dataset"},
        "per-image": {"normalization": "per-image"},
        "per-image + camera augmentation": {
            "normalization": "per-image",
            "augmentation": IntensityAugmentation(),
        },
    }
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="hazematching-normalization-") as tmp:
        root = Path(tmp)
        base = {"size": args.size, "randomize": RandomizationConfig()}
        simulate(
            root / "data",
            SimulationConfig(pairs=args.pairs, seed=3, split=(0.9, 0.1, 0.0), **base),
            progress=False,
        )
        simulate(
            root / "test",
            SimulationConfig(pairs=args.test_pairs, seed=103, split=(0.0, 0.0, 1.0), **base),
            progress=False,
        )
        test = split_folder(root / "test", "test")
        for name, options in variants.items():
            config = TrainConfig(
                steps=args.steps,
                patch_size=args.patch,
                batch_size=8,
                learning_rate=1e-3,
                ema_decay=0.995,
                val_every=args.steps,
                seed=0,
                network=NetworkConfig(model_channels=args.width, channel_mult=(1, 2, 2)),
                **options,
            )
            run = root / name.replace(" ", "_").replace("+", "and")
            start = time.perf_counter()
            train(root / "data", run, config, progress=False)
            seconds = time.perf_counter() - start
            results[name] = {"train_seconds": seconds, **evaluate_model(run, test, sampling)}
            print(name, json.dumps(results[name]["mmse_gain_db"]), flush=True)
    record = {
        "what": __doc__.split("\n\n")[0],
        "settings": {**vars(args), "out": str(args.out), "sampling": sampling.model_dump()},
        "results": results,
    }
    write_result(args.out, record)


if __name__ == "__main__":
    main()
