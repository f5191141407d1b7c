"""Many images and large images on a local Dask cluster: throughput, time, memory and fidelity.

In one run on this machine:
- `throughput`: images per minute of `predict_distributed` on a folder of images, with 1 and 2
  worker processes (one thread each; a fresh cluster each, timed from submission to the last
  output, the workers' model loading included), and their ratio;
- `blocks`: OME-Zarr images of several sizes, smallest first, dehazed block by block on 2
  workers: seconds, seconds per megapixel, and the peak resident memory of each worker process
  (a fresh cluster per size, so each peak belongs to one size) and of this process (so far);
- `fidelity`: at one size, the block-wise result against whole-image (tiled) sampling of the
  same image in one process: the MMSE difference relative to the MMSE's own Monte-Carlo
  standard error (calibrated std / sqrt(K)), and the seam ratio of a single sample across the
  block borders next to the whole image's at the same rows and columns.

Images: one simulated widefield image of `--base` px (`hazematching simulate`, seed 11; or
`--image`), mirrored to fill larger sizes (the content repeats, which matters to neither time
nor seams). The model is a checkpoint (default: the bundled model's), sampled with `--samples`
samples of its calibrated steps; time grows linearly with the samples.

    python benchmarks/blockwise.py --out benchmarks/results/blockwise.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
import zarr
from ome_zarr.writer import write_image

from hazematching.cluster.batch import predict_distributed
from hazematching.cluster.connect import dask_client
from hazematching.config import BlockConfig, SamplingConfig, SimulationConfig
from hazematching.data.simulate import simulate
from hazematching.data.tiff import read_single
from hazematching.inference.predict import predict
from hazematching.metrics.distortion import seam_ratio
from hazematching.model.trained import load_trained_model

BUNDLED_CHECKPOINT = Path("model_zoo/hazematching-simulated/training/best.pt")


def base_image(size: int, folder: Path) -> np.ndarray:
    """One simulated widefield image of `size` px (the test split of a one-pair simulation)."""
    simulate(folder, SimulationConfig(pairs=1, size=size, seed=11, split=(0, 0, 1)), progress=False)
    (pair,) = sorted((folder / "test").glob("pair_*.tif"))
    return tifffile.imread(pair)[1].astype(np.float32)


#: Where the mirrored image is cropped from, so that no mirror axis (where the content is
#: symmetric and the gradient small) falls on a block border and flatters the seam ratio.
MIRROR_OFFSET = 300


def mirrored(image: np.ndarray, size: int) -> np.ndarray:
    """`image` mirrored at its edges, cropped to `size` x `size` px from `MIRROR_OFFSET`."""
    reps = -(-(size + MIRROR_OFFSET) // image.shape[0])
    pad = [(0, reps * image.shape[0] - image.shape[0])] * 2
    tiled = np.pad(image, pad, mode="symmetric")
    return tiled[MIRROR_OFFSET : MIRROR_OFFSET + size, MIRROR_OFFSET : MIRROR_OFFSET + size]


def _peak_rss_mib() -> float:
    """Peak resident memory of the calling process, MiB: VmHWM of its own address space.

    Not `getrusage`'s ru_maxrss, which a spawned worker inherits from the process that forked
    it (Linux carries the high-water mark across fork and exec).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def throughput(
    model: Path, sampling: SamplingConfig, image: np.ndarray, count: int, side: int, work: Path
) -> dict[str, object]:
    """Images per minute with 1 and 2 workers on `count` crops of `side` px."""
    folder = work / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    inputs = []
    for index in range(count):
        y, x = rng.integers(0, image.shape[0] - side, size=2)
        path = folder / f"crop_{index:02d}.tif"
        tifffile.imwrite(path, image[y : y + side, x : x + side])
        inputs.append(path)
    rates = {}
    for workers in (1, 2):
        with dask_client(workers=workers) as client:
            start = time.perf_counter()
            result = predict_distributed(
                model, inputs, work / f"many-out-{workers}", client, sampling, progress=False
            )
            seconds = time.perf_counter() - start
        assert not result.failed, result.failed
        rates[workers] = {"seconds": seconds, "images_per_minute": 60 * count / seconds}
    return {
        "images": count,
        "image_px": side,
        "workers": rates,
        "ratio_2_over_1": rates[2]["images_per_minute"] / rates[1]["images_per_minute"],
    }


def blocks_run(
    model: Path,
    sampling: SamplingConfig,
    blocks: BlockConfig,
    image: np.ndarray,
    work: Path,
    name: str,
) -> tuple[dict[str, object], Path]:
    """One OME-Zarr image dehazed block-wise on 2 fresh workers: time and peak memory."""
    store = work / f"{name}.ome.zarr"
    write_image(image, zarr.open_group(str(store), mode="w"), axes="yx", scale_factors=())
    out = work / f"{name}-out"
    with dask_client(workers=2) as client:
        start = time.perf_counter()
        result = predict_distributed(
            model, [store], out, client, sampling, progress=False, blocks=blocks
        )
        seconds = time.perf_counter() - start
        peaks = sorted(client.run(_peak_rss_mib).values())
    assert not result.failed, result.failed
    megapixels = image.size / 1e6
    entry = {
        "size_px": image.shape[0],
        "megapixels": megapixels,
        "seconds": seconds,
        "seconds_per_megapixel": seconds / megapixels,
        "worker_peak_rss_mib": peaks,
        "main_peak_rss_mib": _peak_rss_mib(),
    }
    return entry, out / f"{name}.ome.zarr"


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values, dtype=np.float64))))


def fidelity(
    model: Path,
    sampling: SamplingConfig,
    blocks: BlockConfig,
    image: np.ndarray,
    blocked: Path,
    work: Path,
) -> dict[str, object]:
    """Block-wise against whole-image sampling of the same image (single process).

    Whole-image sampling is itself tiled (the network sees tiles of its training size), and the
    result depends a little on where the tiles lie. That dependence is the yardstick: the same
    whole image sampled with another valid tiling (a wider tile overlap, the same noise) gives
    the difference that tile placement alone makes. The block-wise difference is reported next
    to it, near the block borders and away from them.
    """
    tiff = work / "whole.tif"
    tifffile.imwrite(tiff, image)
    whole_blocks = blocks.model_copy(update={"above": image.size})  # not block-wise
    start = time.perf_counter()
    (path,) = predict(
        model, [tiff], work / "whole-out", sampling, progress=False, blocks=whole_blocks
    )
    seconds = time.perf_counter() - start
    whole = tifffile.imread(path)
    patch = load_trained_model(model).config.patch_size
    retiled = sampling.model_copy(update={"overlap": 2 * sampling.tiling(patch)[1]})
    (other_path,) = predict(
        model, [tiff], work / "retiled-out", retiled, progress=False, blocks=whole_blocks
    )
    other = tifffile.imread(other_path)
    group = zarr.open_group(str(blocked))
    (level,) = list(group.array_keys())
    ours = np.asarray(group[level])
    standard_error = _rms(whole[1]) / np.sqrt(sampling.samples)
    gap = ours[0] - whole[0]
    borders = list(range(blocks.block, image.shape[0], blocks.block))
    near = np.zeros(image.shape, dtype=bool)
    for border in borders:
        near[max(0, border - 2 * blocks.halo) : border + 2 * blocks.halo] = True
        near[:, max(0, border - 2 * blocks.halo) : border + 2 * blocks.halo] = True
    return {
        "size_px": image.shape[0],
        "whole_image_seconds_single_process": seconds,
        "mmse_monte_carlo_standard_error_rms": standard_error,
        "mmse_rms_difference": _rms(gap),
        "mmse_rms_difference_within_2_halo_of_block_borders": _rms(gap[near]),
        "mmse_rms_difference_elsewhere": _rms(gap[~near]),
        "mmse_max_abs_difference": float(np.abs(gap).max()),
        "mmse_rms_difference_of_another_whole_image_tiling": _rms(other[0] - whole[0]),
        "another_tiling": {"tile": retiled.tiling(patch)[0], "overlap": retiled.overlap},
        "mmse_rms_difference_over_standard_error": _rms(gap) / standard_error,
        "std_rms_relative_difference": _rms(ours[1] - whole[1]) / _rms(whole[1]),
        "seam_ratio_single_sample_blockwise": seam_ratio(ours[2], borders, borders),
        "seam_ratio_single_sample_whole_image": seam_ratio(whole[2], borders, borders),
        "seam_ratio_mmse_blockwise": seam_ratio(ours[0], borders, borders),
        "seam_ratio_mmse_whole_image": seam_ratio(whole[0], borders, borders),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/blockwise.json"))
    parser.add_argument("--model", type=Path, default=BUNDLED_CHECKPOINT)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--base", type=int, default=1024)
    parser.add_argument(
        "--image", type=Path, help="a widefield TIFF (channel --channel) instead of simulating one"
    )
    parser.add_argument("--channel", type=int, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--fidelity-size", type=int, default=2048)
    parser.add_argument("--block", type=int, default=BlockConfig().block)
    parser.add_argument("--halo", type=int, default=BlockConfig().halo)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--image-px", type=int, default=256)
    args = parser.parse_args()
    sampling = SamplingConfig(samples=args.samples, seed=0, keep_samples=True)
    blocks = BlockConfig(block=args.block, halo=args.halo)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.image is not None:
            base = read_single(args.image, args.channel)[0]
        else:
            base = base_image(args.base, work / "sim")
        results: dict[str, object] = {
            "machine": {"platform": platform.platform(), "torch": torch.__version__},
            "model": str(args.model),
            "sampling": sampling.model_dump(mode="json"),
            "blocks": blocks.model_dump(mode="json"),
            "throughput": throughput(
                args.model,
                sampling.model_copy(update={"keep_samples": False}),
                base,
                args.images,
                args.image_px,
                work,
            ),
        }
        runs = []
        outputs = {}
        for size in args.sizes:  # smallest first: this process's peak then belongs to a size
            entry, outputs[size] = blocks_run(
                args.model, sampling, blocks, mirrored(base, size), work, f"image{size}"
            )
            runs.append(entry)
            print(json.dumps(entry))
        results["blocks_runs"] = runs
        size = args.fidelity_size
        fidelity_result = fidelity(
            args.model, sampling, blocks, mirrored(base, size), outputs[size], work
        )
        small, large = runs[0], runs[-1]
        results["time_growth"] = {
            "pixels_ratio": large["megapixels"] / small["megapixels"],
            "seconds_ratio": large["seconds"] / small["seconds"],
        }
        results["fidelity"] = fidelity_result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
