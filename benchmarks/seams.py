"""Seams of tiled sampling: which overlap hides tile borders in single posterior samples.

For a trained checkpoint it simulates held-out images (seeds apart from any training run), draws
single samples untiled, with blended tiles at several overlaps, and by pasting independently
sampled non-overlapping tiles (the naive way), and reports `seam_ratio` (mean |gradient| across
tile borders over the mean elsewhere). Image content alone moves the ratio around 1, so each
tiled ratio is also given relative to the untiled sample measured at the same borders.

With `--package`, it also compares an exported package run whole by bioimageio.core with the
same package run in bioimageio.core's own blocks (halo cropped, no blending).

    python benchmarks/seams.py CHECKPOINT --out benchmarks/results/seams.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from hazematching.config import SamplingConfig, SimulationConfig
from hazematching.data.simulate import simulate_pair
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler, tile_edges
from hazematching.metrics.distortion import seam_ratio
from hazematching.model.trained import TrainedModel, load_trained_model


def _samples(model: TrainedModel, hazy: np.ndarray, sampling: SamplingConfig) -> np.ndarray:
    sampler = build_sampler(model, sampling, torch.device("cpu"))
    return predict_planes(model, sampler, hazy[None]).samples[0]


def _edges(model: TrainedModel, size: int, tile: int, overlap: int) -> list[int]:
    sampling = SamplingConfig(tile=tile, overlap=overlap)
    return tile_edges(build_sampler(model, sampling, torch.device("cpu")), size)


def tiling_seams(
    model: TrainedModel, images: list[np.ndarray], overlaps: list[int], samples: int, steps: int
) -> dict[str, object]:
    """Seam ratios of untiled, blended and pasted single samples."""
    tile, size = model.config.patch_size, images[0].shape[-1]
    base = SamplingConfig(samples=samples, steps=steps, keep_samples=True)
    whole = np.stack([_samples(model, im, base.model_copy(update={"tile": 0})) for im in images])
    rows = []
    for overlap in overlaps:
        edges = _edges(model, size, tile, overlap)
        update = {"tile": tile, "overlap": overlap}
        tiled = np.stack([_samples(model, im, base.model_copy(update=update)) for im in images])
        ratio = seam_ratio(tiled, edges, edges)
        untiled = seam_ratio(whole, edges, edges)
        rows.append(
            {"overlap": overlap, "seam_ratio": ratio, "relative_to_untiled": ratio / untiled}
        )
        print(json.dumps(rows[-1]), flush=True)
    pasted = np.zeros_like(whole)
    corners = [(r, c) for r in range(0, size, tile) for c in range(0, size, tile)]
    for index, image in enumerate(images):
        for k, (r, c) in enumerate(corners):
            independent = base.model_copy(update={"tile": 0, "seed": k})
            crop = image[r : r + tile, c : c + tile]
            pasted[index, :, r : r + tile, c : c + tile] = _samples(model, crop, independent)
    naive_edges = list(range(tile, size, tile))
    return {
        "tile": tile,
        "blended": rows,
        "pasted_independent_tiles": seam_ratio(pasted, naive_edges, naive_edges),
        "untiled_at_pasted_borders": seam_ratio(whole, naive_edges, naive_edges),
    }


def consumer_blocking(package: Path, images: list[np.ndarray]) -> dict[str, object]:
    """The package run whole vs in bioimageio.core's blocks: seams and difference per channel."""
    import bioimageio.core

    from hazematching.bioimage.reading import channel_names, load_package

    descr = load_package(package)
    halo = int(getattr(descr.outputs[0].axes[-1], "halo", 0))
    block = 2 * halo + 64
    whole, blocked = [], []
    for image in images:
        inputs = {"hazy": image[None, None].astype(np.float32)}
        shape = {"hazy": {"batch": 1, "channel": 1, "y": block, "x": block}}
        for store, options in ((whole, {}), (blocked, {"input_block_shape": shape})):
            sample = bioimageio.core.predict(model=descr, inputs=inputs, **options)
            store.append(sample.members["dehazed"].data.values[0])
    whole_arr, blocked_arr = np.stack(whole), np.stack(blocked)
    edges = list(range(block - 2 * halo, images[0].shape[-1], block - 2 * halo))
    result: dict[str, object] = {"halo": halo, "block": block}
    for index, name in enumerate(channel_names(descr)[:2]):
        a, b = whole_arr[:, index], blocked_arr[:, index]
        result[name] = {
            "seam_ratio_blocked": seam_ratio(b, edges, edges),
            "seam_ratio_whole": seam_ratio(a, edges, edges),
            "mean_abs_difference_relative": float(np.abs(a - b).mean() / np.abs(a).mean()),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/seams.json"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--overlaps", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--package", type=Path, help="also measure bioimageio.core's blocking")
    args = parser.parse_args()

    model = load_trained_model(args.checkpoint)
    simulation = SimulationConfig(pairs=1, size=args.size, seed=100)
    images = [
        simulate_pair(simulation.model_copy(update={"seed": 100 + i}), 0).widefield
        for i in range(args.images)
    ]
    result: dict[str, object] = {
        "checkpoint": str(args.checkpoint),
        "images": f"{args.images} simulated {args.size} px images, seeds 100..",
        "samples": args.samples,
        "steps": args.steps,
        "tiling": tiling_seams(model, images, args.overlaps, args.samples, args.steps),
    }
    if args.package:
        result["consumer_blocking"] = consumer_blocking(args.package, images)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
