"""Quality and cost of sampling settings: which model and (samples, steps) to make the default.

Every model given with --model is sampled at the settings of its kind: a HazeMatching teacher
at 8 x 20 (the reference), 1 x 1 (its head alone: x_0 plus the velocity at t = 0, the posterior
mean of an ideal network) and with --teacher-32 at 32 x 20 (a better sample mean); a few-step
student at 8 x 1, and a student with an MMSE head also at 4 x 1 and at 8 x 1 without its head
(the same network, its MMSE the mean of the 8 samples), to show what the head adds; with
--settings (e.g. 4x2,3x2), every model at those settings only. For every
row, in one run on one machine:
- the std calibration is fitted on the val pairs of HELDOUT at that very setting
  (`hazematching calibrate` on a copy of the checkpoint),
- the calibrated model is evaluated on the test pairs (`hazematching evaluate`): MMSE
  range-invariant PSNR, spectral distance and SWD of single samples, calibrated ENCE,
- one 1024 x 1024 image (the test inputs tiled) is dehazed through the library path (the
  scripted sampler of `hazematching predict`, float32), timed, up to --max-timed evaluations.
Then each package given with --package is run on the same image through bioimageio.core, timed,
and the ratio of the first package's time to each other's is reported. Results go to JSON and a
Markdown table.

    python benchmarks/few_step.py --model teacher=TEACHER.pt --model reflow-head=STUDENT.pt \
        --heldout runs/model-030/heldout --package previous=OLD.zip --package new=NEW.zip \
        --out benchmarks/results/few_step.json --markdown benchmarks/results/few_step.md
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from hazematching.bioimage.reading import load_package
from hazematching.config import SamplingConfig
from hazematching.data.dataset import load_pairs, split_folder
from hazematching.evaluation.compute import evaluate
from hazematching.inference.package import run_package
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler, evaluations_per_image
from hazematching.model.checkpoint import (
    load_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
)
from hazematching.model.network import OUTPUT_LAYER
from hazematching.model.trained import load_trained_model
from hazematching.uncertainty.calibrate import calibrate

# (samples, steps) measured for each kind of model. 8 x 20 is the teacher's reference sampling.
TEACHER_SETTINGS = [(8, 20), (1, 1)]
# 32 x 20 (a better sample mean) costs 640 evaluations per image: about 70 minutes for the 40
# held-out pairs on 2 CPU cores, so it is measured only with --teacher-32 (or on a GPU).
TEACHER_32 = (32, 20)
STUDENT_SETTINGS = [(8, 1)]
HEAD_SETTINGS = [(4, 1)]  # a head's MMSE needs fewer samples than a sample mean
WITHOUT_HEAD = " without head"


def without_head(source: Path, out: Path) -> Path:
    """The checkpoint with its MMSE head removed: the same network, its MMSE the sample mean."""
    checkpoint = load_checkpoint(source)
    network = checkpoint.config.network.model_copy(update={"mmse_head": False})

    def velocity_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            k: v[:1] if k.startswith(OUTPUT_LAYER) and v.shape[0] == 2 else v
            for k, v in state.items()
        }

    save_checkpoint(
        out,
        replace(
            checkpoint,
            config=checkpoint.config.model_copy(update={"network": network}),
            model=velocity_only(checkpoint.model),
            ema=velocity_only(checkpoint.ema),
            optimizer={},
        ),
    )
    return out


def rows_to_measure(
    models: dict[str, Path],
    work: Path,
    teacher_32: bool,
    settings: list[tuple[int, int]] | None = None,
) -> list[tuple[str, Path, int, int]]:
    """(name, checkpoint, samples, steps) of every row, in the order given; with `settings`,
    every model at exactly those (samples, steps) instead of its kind's."""
    rows = []
    for name, given in models.items():
        path = resolve_checkpoint_path(given)
        if settings:
            rows += [(name, path, k, t) for k, t in settings]
            continue
        checkpoint = load_checkpoint(path)
        if checkpoint.config.method == "hazematching":
            settings = TEACHER_SETTINGS + ([TEACHER_32] if teacher_32 else [])
            rows += [(name, path, k, t) for k, t in settings]
            continue
        rows += [(name, path, k, t) for k, t in STUDENT_SETTINGS]
        if checkpoint.config.network.mmse_head:
            rows += [(name, path, k, t) for k, t in HEAD_SETTINGS]
            plain = without_head(path, work / f"{name}-plain.pt")
            rows += [(name + WITHOUT_HEAD, plain, k, t) for k, t in STUDENT_SETTINGS]
    return rows


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
    models: dict[str, Path],
    heldout: Path,
    work: Path,
    teacher_32: bool,
    settings: list[tuple[int, int]] | None = None,
) -> list[dict[str, object]]:
    """Calibrate and evaluate every row."""
    rows = []
    for name, source, samples, steps in rows_to_measure(models, work, teacher_32, settings):
        label = f"{name}-{samples}x{steps}".replace(" ", "-")
        checkpoint = work / label / "best.pt"
        checkpoint.parent.mkdir(parents=True)
        shutil.copyfile(source, checkpoint)
        sampling = SamplingConfig(samples=samples, steps=steps, seed=0)
        fitted = None  # one sample has no spread to calibrate
        if samples > 1:
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
        config = load_checkpoint(checkpoint).config
        rows.append(
            {
                "model": name,
                "method": config.method,
                "head": config.network.mmse_head,
                "samples": samples,
                "steps": steps,
                "evaluations": evaluations_per_image(config, sampling),
                "mmse_ri_psnr": overall["mmse"]["ri_psnr"],
                "sample_spectral_distance": overall["sample"]["spectral_distance"],
                "sample_swd": overall["sample"]["swd"],
                "ence_raw": overall["calibration"]["raw_error"] if fitted else None,
                "ence_calibrated": overall["calibration"]["calibrated_error"] if fitted else None,
                "ence_val_after_fit": fitted.calibration.error_after if fitted else None,
                "checkpoint": checkpoint,
                "sampling": sampling,
            }
        )
        shown = {k: v for k, v in rows[-1].items() if isinstance(v, float)}
        print(label, json.dumps(shown), flush=True)
    return rows


def add_times(rows: list[dict[str, object]], image: np.ndarray, max_timed: int) -> None:
    """Seconds per row on the library path, up to `max_timed` evaluations per image (None
    above: the time grows with the evaluations)."""
    for row in rows:
        checkpoint, sampling = row.pop("checkpoint"), row.pop("sampling")
        row["seconds_1024"] = (
            time_library(checkpoint, sampling, image) if row["evaluations"] <= max_timed else None
        )
        print(row["model"], row["samples"], row["steps"], row["seconds_1024"], flush=True)


def package_times(named: dict[str, Path], image: np.ndarray) -> dict[str, dict]:
    """Seconds of each package on `image`, with the method and sampling baked into it."""
    packages = {}
    for name, path in named.items():
        settings = load_package(path).config.model_dump()["hazematching"]
        packages[name] = {
            "path": str(path),
            "version": str(load_package(path).version),
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
        "| model | samples x steps | evaluations / image | MMSE RI-PSNR (dB) | sample "
        f"spectral dist. | sample SWD | ENCE calibrated | s for {size} x {size} (library) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        seconds = "not timed" if r["seconds_1024"] is None else f"{r['seconds_1024']:.0f}"
        lines.append(
            f"| {r['model']} | {r['samples']} x {r['steps']} | {r['evaluations']} | "
            f"{r['mmse_ri_psnr']:.2f} | {r['sample_spectral_distance']:.3f} | "
            f"{r['sample_swd']:.4f} | {_ence(r)} | {seconds} |"
        )
    if packages:
        lines += [
            "",
            f"| package | samples x steps | s for {size} x {size} (bioimageio.core) | speed-up |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {n} ({p['version']}) | {p['samples']} x {p['steps']} | {p['seconds']:.0f} | "
            f"{p['speedup_vs_first']:.2f}x |"
            for n, p in packages.items()
        ]
    return "\n".join(lines) + "\n"


def _ence(row: dict[str, object]) -> str:
    return "n/a (1 sample)" if row["ence_calibrated"] is None else f"{row['ence_calibrated']:.3f}"


def _settings(text: str | None) -> list[tuple[int, int]] | None:
    """ "4x1,4x2" -> [(4, 1), (4, 2)]."""
    if not text:
        return None
    return [tuple(int(n) for n in item.split("x")) for item in text.split(",")]


def _named(values: list[str]) -> dict[str, Path]:
    return {v.split("=", 1)[0]: Path(v.split("=", 1)[1]) for v in values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=CHECKPOINT")
    parser.add_argument("--heldout", type=Path, required=True, help="simulated val/test pairs")
    parser.add_argument("--package", action="append", default=[], help="NAME=PACKAGE")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument(
        "--max-timed",
        type=int,
        default=16,
        help="time the library path up to this many evaluations per image",
    )
    parser.add_argument("--teacher-32", action="store_true", help="also the teacher at 32 x 20")
    parser.add_argument(
        "--settings", help="SAMPLESxSTEPS,...: every model at these settings only, e.g. 4x2,3x2"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    image = big_image(args.heldout, args.size)
    with tempfile.TemporaryDirectory() as work:
        rows = measure(
            _named(args.model), args.heldout, Path(work), args.teacher_32, _settings(args.settings)
        )
        packages = package_times(_named(args.package), image)
        add_times(rows, image, args.max_timed)
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
