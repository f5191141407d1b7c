"""Quality and cost of sampling settings: which (method, samples, steps) to make the default.

For every configuration, in one run on one machine:
- the std calibration is fitted on the val pairs of HELDOUT at that very setting
  (`hazematching calibrate` on a copy of the checkpoint),
- the calibrated model is evaluated on the test pairs (`hazematching evaluate`): MMSE
  range-invariant PSNR, spectral distance and SWD of single samples, calibrated ENCE,
- one 1024 x 1024 image (the test inputs tiled) is dehazed through the library path (the
  scripted sampler of `hazematching predict`, float32), timed.
Then each package given with --package is run on the same image through bioimageio.core, timed,
and the ratio of the first package's time to each other's is reported. Results go to JSON and a
Markdown table.

    python benchmarks/few_step.py --model hazematching=TEACHER.pt --model reflow=STUDENT.pt \
        --heldout runs/default-model/heldout --package today=OLD.zip --package new=NEW.zip \
        --out benchmarks/results/few_step.json --markdown benchmarks/results/few_step.md
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hazematching.bioimage.reading import load_package
from hazematching.config import SamplingConfig
from hazematching.data.dataset import load_pairs, split_folder
from hazematching.evaluation.compute import evaluate
from hazematching.inference.package import run_package
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler
from hazematching.model.trained import load_trained_model
from hazematching.uncertainty.calibrate import calibrate

# (model, samples, steps, tile): the settings measured. 8 x 20 is the sampling of the first
# bundled model; the others cost at most 16 evaluations per image. Tile None is the training
# patch size (64 + 16 px for the bundled model).
CONFIGURATIONS: list[tuple[str, int, int, int | None]] = [
    ("hazematching", 8, 20, None),
    ("hazematching", 8, 2, None),
    ("reflow", 16, 1, None),
    ("reflow", 8, 2, None),
    ("reflow", 8, 1, None),
]


def big_image(heldout: Path, size: int) -> np.ndarray:
    """A size x size widefield image: the first test input tiled (real content, known size)."""
    hazy = load_pairs(split_folder(heldout, "test")).inputs[0]
    reps = (-(-size // hazy.shape[0]), -(-size // hazy.shape[1]))
    return np.ascontiguousarray(np.tile(hazy, reps)[:size, :size])


def time_library(checkpoint: Path, sampling: SamplingConfig, image: np.ndarray) -> float:
    """Seconds to dehaze `image` with the checkpoint's scripted sampler (after a small warm-up)."""
    model = load_trained_model(checkpoint)
    sampler = build_sampler(model, sampling, torch.device("cpu"))
    with torch.no_grad():
        predict_planes(model, sampler, image[None, :128, :128])
        start = time.perf_counter()
        predict_planes(model, sampler, image[None])
    return time.perf_counter() - start


def time_package(path: Path, image: np.ndarray) -> float:
    """Seconds for bioimageio.core to run the package on `image` (pipeline opened once)."""
    descr = load_package(path)
    start = time.perf_counter()
    run_package(descr, image[None], "cpu", lambda: None)
    return time.perf_counter() - start


def measure(
    models: dict[str, Path], heldout: Path, image: np.ndarray, work: Path
) -> list[dict[str, object]]:
    """Calibrate, evaluate and time every configuration whose model was given."""
    rows = []
    for method, samples, steps, tile in CONFIGURATIONS:
        if method not in models:
            continue
        label = f"{method}-{samples}x{steps}" + (f"-tile{tile}" if tile else "")
        checkpoint = work / label / "best.pt"
        checkpoint.parent.mkdir(parents=True)
        shutil.copyfile(models[method], checkpoint)
        sampling = SamplingConfig(samples=samples, steps=steps, seed=0, tile=tile)
        fitted = calibrate(
            checkpoint,
            heldout,
            work / label / "calibration",
            sampling,
            device="cpu",
            progress=False,
        )
        result = evaluate(
            checkpoint,
            heldout,
            work / "report",
            sampling,
            name=label,
            figures=0,
            device="cpu",
            progress=False,
        )
        overall = result.overall
        rows.append(
            {
                "method": method,
                "solver": "euler",
                "samples": samples,
                "steps": steps,
                "evaluations": samples * steps,
                "tile": tile,
                "mmse_ri_psnr": overall["mmse"]["ri_psnr"],
                "sample_spectral_distance": overall["sample"]["spectral_distance"],
                "sample_swd": overall["sample"]["swd"],
                "ence_raw": overall["calibration"]["raw_error"],
                "ence_calibrated": overall["calibration"]["calibrated_error"],
                "ence_val_after_fit": fitted.calibration.error_after,
                "checkpoint": checkpoint,
                "sampling": sampling,
            }
        )
        shown = {k: v for k, v in rows[-1].items() if isinstance(v, float)}
        print(label, json.dumps(shown), flush=True)
    return rows


def add_times(
    rows: list[dict[str, object]], image: np.ndarray, packages: dict[str, dict], max_timed: int
) -> None:
    """Seconds per configuration: the library path up to `max_timed` evaluations per image;
    above, the time of a given package sampled with that very setting (None if there is none).
    """
    for row in rows:
        checkpoint, sampling = row.pop("checkpoint"), row.pop("sampling")
        if row["evaluations"] <= max_timed:
            row["seconds_1024"], row["seconds_source"] = (
                time_library(checkpoint, sampling, image),
                "library",
            )
        else:
            same = [
                name
                for name, p in packages.items()
                if (p["method"], p["samples"], p["steps"])
                == (row["method"], row["samples"], row["steps"])
            ]
            row["seconds_1024"] = packages[same[0]]["seconds"] if same else None
            row["seconds_source"] = f"package {same[0]}" if same else None
        print(row["method"], row["samples"], row["steps"], row["seconds_1024"], flush=True)


def package_times(named: dict[str, Path], image: np.ndarray) -> dict[str, dict]:
    """Seconds of each package on `image`, with the method and sampling baked into it."""
    packages = {}
    for name, path in named.items():
        settings = load_package(path).config.model_dump()["hazematching"]
        packages[name] = {
            "path": str(path),
            "method": settings["training"]["method"],
            "samples": settings["sampling"]["samples"],
            "steps": settings["sampling"]["steps"],
            "seconds": time_package(path, image),
        }
        print(f"package {name}: {packages[name]['seconds']:.1f} s", flush=True)
    first = next(iter(packages.values()), None)
    for entry in packages.values():
        entry["speedup_vs_first"] = first["seconds"] / entry["seconds"]
    return packages


def markdown(rows: list[dict[str, object]], packages: dict[str, dict], size: int) -> str:
    """The table of the README and the card."""
    lines = [
        "| method | samples x steps (tile) | evaluations / image | MMSE RI-PSNR (dB) | sample "
        f"spectral dist. | sample SWD | ENCE calibrated | s for {size} x {size} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['samples']} x {r['steps']}"
            + (f" ({r['tile']})" if r["tile"] else "")
            + f" | {r['evaluations']} | "
            f"{r['mmse_ri_psnr']:.2f} | {r['sample_spectral_distance']:.3f} | "
            f"{r['sample_swd']:.4f} | {r['ence_calibrated']:.3f} | {_seconds(r)} |"
        )
    if packages:
        lines += [
            "",
            f"| package | samples x steps | s for {size} x {size} (bioimageio.core) | speed-up |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {n} | {p['samples']} x {p['steps']} | {p['seconds']:.0f} | "
            f"{p['speedup_vs_first']:.1f}x |"
            for n, p in packages.items()
        ]
    return "\n".join(lines) + "\n"


def _seconds(row: dict[str, object]) -> str:
    if row["seconds_1024"] is None:
        return "not timed"
    source = "" if row["seconds_source"] == "library" else f" ({row['seconds_source']})"
    return f"{row['seconds_1024']:.0f}{source}"


def _named(values: list[str]) -> dict[str, Path]:
    return {v.split("=", 1)[0]: Path(v.split("=", 1)[1]) for v in values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], help="METHOD=CHECKPOINT")
    parser.add_argument("--heldout", type=Path, required=True, help="simulated val/test pairs")
    parser.add_argument("--package", action="append", default=[], help="NAME=PACKAGE")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument(
        "--max-timed",
        type=int,
        default=16,
        help="time the library path up to this many evaluations per image; costlier settings "
        "take the time of a --package sampled that way",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    image = big_image(args.heldout, args.size)
    with tempfile.TemporaryDirectory() as work:
        rows = measure(_named(args.model), args.heldout, image, Path(work))
        packages = package_times(_named(args.package), image)
        add_times(rows, image, packages, args.max_timed)
    result = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "heldout": str(args.heldout.resolve()),
        "image_size": args.size,
        "configurations": rows,
        "packages": packages,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(rows, packages, args.size))


if __name__ == "__main__":
    main()
