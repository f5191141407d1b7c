"""Training and sampling throughput of the velocity network, next to the machine's matmul peak.

For each network size it measures, in one run on the same machine:
- the FLOP count of one forward pass on one patch (torch's FlopCounterMode),
- training patches per second (forward, backward and Adam step on a batch),
- sampling megapixels per second per posterior sample with T Euler steps (scripted sampler),
and the fp32 matmul throughput of the machine, so the network's effective GFLOP/s can be read as
a fraction of what the hardware reaches. Results go to a JSON file.

    python benchmarks/throughput.py --out benchmarks/results/throughput.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from hazematching.config import NetworkConfig
from hazematching.inference.sampling import script_sampler
from hazematching.model.network import build_velocity_net, count_parameters, trace_velocity
from hazematching.model.sampler import EulerSampler
from hazematching.training.flow import GuidedFlowMatching, draw_times

NETWORKS = {
    "paper (default)": NetworkConfig(),
    "small": NetworkConfig(channel_mult=(1, 2, 2), attention_downsample=(4,)),
}


def _best_time(fn, repeats: int) -> float:
    """Fastest of `repeats` timed calls after one warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(size: int, repeats: int) -> float:
    """fp32 matrix-multiply throughput of this machine in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = _best_time(lambda: a @ b, repeats)
    return 2 * size**3 / seconds / 1e9


def forward_flops(net: torch.nn.Module, patch: int) -> int:
    """FLOPs of one forward pass on a single (2, patch, patch) input."""
    x, t = torch.zeros(1, 2, patch, patch), torch.zeros(1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(t, x)
    return int(counter.get_total_flops())


def training_patches_per_second(
    net: torch.nn.Module, patch: int, batch: int, repeats: int
) -> float:
    """Patches per second of the full training step (loss, backward, Adam)."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    objective = GuidedFlowMatching()
    generator = torch.Generator().manual_seed(0)
    hazy, target = torch.randn(batch, 1, patch, patch), torch.randn(batch, 1, patch, patch)

    def step() -> None:
        noise = torch.randn(target.shape, generator=generator)
        loss = objective.loss(net, hazy, target, noise, draw_times(generator, batch, 20))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    net.train()
    return batch / _best_time(step, repeats)


def sampling_megapixels_per_second(
    net: torch.nn.Module, patch: int, size: int, steps: int, repeats: int
) -> float:
    """Megapixels per second per posterior sample, for one sample of a size x size image."""
    sampler = script_sampler(
        EulerSampler(
            trace_velocity(net, patch),
            steps=steps,
            samples=1,
            seed=0,
            batch_size=1,
            size_multiple=16,
        )
    )
    hazy = torch.randn(1, 1, size, size)
    with torch.no_grad():
        seconds = _best_time(lambda: sampler(hazy), repeats)
    return size * size / seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="Euler steps T")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    report = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "torch": str(torch.__version__),
            "threads": torch.get_num_threads(),
            "matmul_fp32_gflops": round(matmul_gflops(2048, args.repeats), 1),
        },
        "settings": {"patch": args.patch, "batch": args.batch, "euler_steps": args.steps},
        "networks": {},
    }
    for name, config in NETWORKS.items():
        net = build_velocity_net(config, args.patch)
        flops = forward_flops(net, args.patch)
        train_rate = training_patches_per_second(net, args.patch, args.batch, args.repeats)
        sample_rate = sampling_megapixels_per_second(
            net.eval(), args.patch, args.patch, args.steps, args.repeats
        )
        forward_rate = sample_rate * 1e6 / args.patch**2 * args.steps  # forwards per second
        report["networks"][name] = {
            "config": config.model_dump(mode="json"),
            "parameters": count_parameters(net),
            "forward_gflop_per_patch": round(flops / 1e9, 3),
            "train_patches_per_s": round(train_rate, 2),
            "train_gflops_effective": round(3 * flops * train_rate / 1e9, 1),
            "sample_megapixels_per_s_per_sample": round(sample_rate, 4),
            "sample_gflops_effective": round(flops * forward_rate / 1e9, 1),
        }
        print(name, json.dumps(report["networks"][name]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["machine"]))


if __name__ == "__main__":
    main()
