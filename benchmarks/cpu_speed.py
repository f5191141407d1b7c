"""CPU settings of the library sampling path: bfloat16 autocast, channels_last, threads.

Each variant wraps the checkpoint's EMA network differently before it is traced into the
scripted sampler that `hazematching predict` runs; for each it measures, in one run:
- seconds to dehaze one SIZE x SIZE image (the first held-out test input tiled), best of 2,
- the MMSE range-invariant PSNR on the held-out test pairs and its difference to float32.
A variant is worth keeping only if it is faster at no more than 0.05 dB loss. Results go to JSON.

    python benchmarks/cpu_speed.py MODEL --heldout runs/default-model/heldout \
        --out benchmarks/results/cpu_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from hazematching.config import SamplingConfig
from hazematching.data.dataset import load_pairs, split_folder
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import (
    ChannelsLast,
    method_sampling,
    sampler_kwargs,
    script_sampler,
)
from hazematching.metrics.distortion import range_invariant_psnr
from hazematching.model.network import trace_velocity
from hazematching.model.sampler import EulerSampler
from hazematching.model.trained import TrainedModel, load_trained_model


class Bfloat16Autocast(nn.Module):
    """The network run under CPU bfloat16 autocast, returning float32."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.net(t, x).float()


VARIANTS = {
    "float32, 2 threads": (lambda net: net, 2),
    "float32, 1 thread": (lambda net: net, 1),
    "float32 channels_last, 2 threads": (ChannelsLast, 2),
    "bfloat16 autocast, 2 threads": (Bfloat16Autocast, 2),
}


def variant_sampler(model: TrainedModel, wrap, sampling: SamplingConfig) -> torch.jit.ScriptModule:
    """The scripted sampler of `predict` around the wrapped, traced network."""
    sampling = method_sampling(model.config, sampling, model.calibration)
    velocity = trace_velocity(wrap(model.velocity), model.config.patch_size)
    kwargs = sampler_kwargs(model.config, sampling, model.calibration)
    return script_sampler(EulerSampler(velocity, **kwargs))


def variant_sampling(path: Path, sampling: SamplingConfig) -> SamplingConfig:
    """The settings every variant samples with (model defaults filled in)."""
    model = load_trained_model(path)
    return method_sampling(model.config, sampling, model.calibration)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="checkpoint")
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    pairs = load_pairs(split_folder(args.heldout, "test"))
    hazy = pairs.inputs[0]
    reps = (-(-args.size // hazy.shape[0]), -(-args.size // hazy.shape[1]))
    image = np.ascontiguousarray(np.tile(hazy, reps)[: args.size, : args.size])
    sampling = SamplingConfig(samples=args.samples, steps=args.steps, seed=0)
    rows = {}
    for name, (wrap, threads) in VARIANTS.items():
        torch.set_num_threads(threads)
        model = load_trained_model(args.model)
        sampler = variant_sampler(model, wrap, sampling)
        with torch.no_grad():
            predict_planes(model, sampler, image[None, :128, :128])  # warm-up
            times = []
            for _ in range(2):
                start = time.perf_counter()
                predict_planes(model, sampler, image[None])
                times.append(time.perf_counter() - start)
            psnr = [
                range_invariant_psnr(target, predict_planes(model, sampler, x[None]).mmse[0])
                for x, target in zip(pairs.inputs, pairs.targets, strict=True)
            ]
        rows[name] = {"seconds": min(times), "mmse_ri_psnr": float(np.mean(psnr))}
        print(name, rows[name], flush=True)
    base = rows["float32, 2 threads"]
    for row in rows.values():
        row["speedup"] = base["seconds"] / row["seconds"]
        row["psnr_change_db"] = row["mmse_ri_psnr"] - base["mmse_ri_psnr"]
    result = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "cpu_flags_bf16": _bf16_flags(),
        },
        "model": str(args.model),
        "sampling": variant_sampling(args.model, sampling).model_dump(),
        "image_size": args.size,
        "test_pairs": len(pairs),
        "variants": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


def _bf16_flags() -> list[str]:
    """The bfloat16 instruction-set flags /proc/cpuinfo lists (empty: none, or not Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if "bf16" in f})


if __name__ == "__main__":
    main()
