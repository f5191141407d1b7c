"""Fine-tuning a model on a few pairs of a new microscope against training from scratch.

A microscope outside the model's training ranges (by default the robustness condition `na-low`
of `packaging/robustness.toml`: NA 0.55-0.65, trained 0.8-1.35) gives 3 or 10 training pairs, 2
validation pairs and held-out test pairs (another seed). For each training set size, the same
number of steps with the same settings is trained twice on this CPU, once from the model
(`train --init`) and once from fresh weights, with the wall time of each; the MMSE's
range-invariant PSNR gain over the input on the test pairs is measured for both and for the
model as it is. Results go to JSON.

    python benchmarks/fine_tuning.py --model packaging/checkpoints/robust-teacher \
        --out benchmarks/results/fine_tuning.json
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from record import write_result

from hazematching.config import RobustnessPlan, SamplingConfig, TrainConfig, load_toml
from hazematching.data.dataset import load_pairs, split_folder
from hazematching.data.simulate import simulate
from hazematching.evaluation.robustness import condition_config
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler
from hazematching.metrics.distortion import range_invariant_psnr
from hazematching.model.checkpoint import load_model_checkpoint
from hazematching.model.trained import load_trained_model
from hazematching.training.loop import train


def mmse_gain(model_path: Path, test: Path, sampling: SamplingConfig) -> float:
    """Mean RI-PSNR of the MMSE minus that of the input over the test pairs (dB)."""
    model = load_trained_model(model_path)
    sampler = build_sampler(model, sampling, torch.device("cpu"), calibrated=False)
    pairs = load_pairs(test)
    gains = []
    for hazy, target in zip(pairs.inputs, pairs.targets, strict=True):
        mmse = predict_planes(model, sampler, hazy[None]).mmse[0]
        gains.append(range_invariant_psnr(target, mmse) - range_invariant_psnr(target, hazy))
    return float(np.mean(gains))


def simulate_condition(
    plan: RobustnessPlan, name: str, folder: Path, pairs: int, seed: int
) -> Path:
    """`pairs` pairs of condition `name` (all in test/) under `folder`, with its own seed."""
    config = condition_config(plan, name).model_copy(update={"pairs": pairs, "seed": seed})
    simulate(folder, config, progress=False)
    return split_folder(folder, "test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plan", type=Path, default=Path("packaging/robustness.toml"))
    parser.add_argument("--condition", default="na-low")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--test-pairs", type=int, default=20)
    args = parser.parse_args()
    plan = load_toml(args.plan, RobustnessPlan, "robustness plan")
    start = load_model_checkpoint(args.model)
    sampling = SamplingConfig(samples=4, steps=10)
    settings = {
        "steps": args.steps,
        "patch_size": 64,
        "batch_size": 8,
        "learning_rate": 3e-4,
        "ema_decay": 0.99,
        "val_every": args.steps,
        "seed": 0,
        "device": "cpu",
        "network": start.config.network,
        "time_grid": start.config.time_grid,
        "normalization": start.normalization.mode,  # both runs alike
    }
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="hazematching-fine-tuning-") as tmp:
        root = Path(tmp)
        pool = simulate_condition(plan, args.condition, root / "pool", max(args.sizes), 11)
        val = simulate_condition(plan, args.condition, root / "val", 2, 12)
        test = simulate_condition(plan, args.condition, root / "test", args.test_pairs, 13)
        results["model as it is"] = {"mmse_gain_db": mmse_gain(args.model, test, sampling)}
        for size in args.sizes:
            data = root / f"data-{size}"
            (data / "train").mkdir(parents=True)
            for path in sorted(pool.glob("*.tif"))[:size]:
                shutil.copy(path, data / "train" / path.name)
            shutil.copytree(val, data / "val")
            for name, init in (("fine-tuned", str(args.model)), ("from scratch", None)):
                config = TrainConfig(**settings, init=init)
                began = time.perf_counter()
                run = train(data, root / f"{name}-{size}", config, progress=False)
                seconds = time.perf_counter() - began
                results[f"{name}, {size} pairs"] = {
                    "train_seconds": seconds,
                    "mmse_gain_db": mmse_gain(run.best, test, sampling),
                }
                print(name, size, results[f"{name}, {size} pairs"], flush=True)
    record = {
        "what": __doc__.split("\n\n")[0],
        "model": str(args.model),
        "condition": plan.conditions[args.condition].description,
        "settings": {**settings, "network": start.config.network.model_dump()},
        "sampling": sampling.model_dump(),
        "test_pairs": args.test_pairs,
        "results": results,
    }
    write_result(args.out, record)


if __name__ == "__main__":
    main()
