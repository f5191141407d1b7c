"""Cost of tiled sampling on large images: time per sample, peak memory, overlap overhead.

For square images of 512, 1024 and 2048 px and a fixed tile (the training patch size of the
default network, 128 px) it draws one posterior sample with T Euler steps and records the wall
time and the peak resident memory of the process. Every configuration runs in its own fresh
process, so the peak memory is that configuration's alone. The overlap overhead is the time
with the default overlap divided by the time with non-overlapping tiles, measured in the same
run; the scaling is the time per megapixel at each size (constant means linear in pixels).

    python benchmarks/tiling.py --out benchmarks/results/tiling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from hazematching.config import NetworkConfig, SamplingConfig
from hazematching.inference.sampling import script_sampler
from hazematching.model.network import build_velocity_net, trace_velocity
from hazematching.model.sampler import EulerSampler

PATCH = 128  # training patch size of the default recipe: the tile side


def run_one(size: int, tile: int, overlap: int, steps: int) -> dict[str, float]:
    """Time one sample of a size x size image; report seconds and this process's peak RSS."""
    torch.manual_seed(0)
    network = NetworkConfig()
    velocity = trace_velocity(build_velocity_net(network, PATCH), PATCH)
    sampler = script_sampler(
        EulerSampler(
            velocity,
            steps=steps,
            samples=1,
            seed=0,
            batch_size=8,
            size_multiple=network.size_multiple,
            tile=tile,
            overlap=overlap,
        )
    )
    hazy = torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # TorchScript profiles the first calls per input shape and optimises afterwards: warm up
        # on a crop that already holds 2 x 2 tiles of the shape the timed run uses
        warm = 2 * (tile or PATCH)
        for _ in range(2):
            sampler(hazy[:, :, :warm, :warm])
        start = time.perf_counter()
        sampler(hazy)
        seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tiles = len(sampler.tile_starts(size)) ** 2
    return {"seconds": seconds, "peak_rss_mb": peak_kib / 1024, "tiles": tiles}


def _in_fresh_process(size: int, tile: int, overlap: int, steps: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", str(size), str(tile), str(overlap), str(steps)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tiling.json"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--worker", type=int, nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_one(*args.worker)))
        return

    tile, overlap = SamplingConfig().tiling(PATCH)
    rows = []
    for size in args.sizes:
        blended = _in_fresh_process(size, tile, overlap, args.steps)
        plain = _in_fresh_process(size, tile, 0, args.steps)
        megapixels = size * size / 1e6
        rows.append(
            {
                "size": size,
                "seconds_per_sample": blended["seconds"],
                "seconds_per_megapixel": blended["seconds"] / megapixels,
                "peak_rss_mb": blended["peak_rss_mb"],
                "tiles": blended["tiles"],
                "non_overlapping": plain,
                "overlap_cost": blended["seconds"] / plain["seconds"],
                "overlap_tile_ratio": blended["tiles"] / plain["tiles"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    smallest, largest = rows[0], rows[-1]
    result = {
        "what": "one posterior sample, T Euler steps, default network, tiled velocity",
        "tile": tile,
        "overlap": overlap,
        "steps": args.steps,
        "paper_inner_crop_cost": 4.0,
        "time_ratio_largest_to_smallest": largest["seconds_per_sample"]
        / smallest["seconds_per_sample"],
        "pixel_ratio_largest_to_smallest": (largest["size"] / smallest["size"]) ** 2,
        "sizes": rows,
        "machine": {
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
