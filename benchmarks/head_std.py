"""What the std of a model with an MMSE head should measure: the samples' spread around their
own mean, or their root-mean-square distance from the head's MMSE.

For one checkpoint with a head, sampled K x T: on the val pairs of HELDOUT both candidate stds
are computed from the same samples and each gets its own calibration (std' = a std + b, fitted
as `hazematching calibrate` does); on the test pairs the calibrated error (ENCE) of each is
measured against the head's error, the error the std is meant to describe. Results go to JSON.

    python benchmarks/head_std.py runs/robust-model/reflow --heldout runs/robust-model/heldout \
        --out benchmarks/results/head_std.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from record import write_result

from hazematching.config import SamplingConfig
from hazematching.data.dataset import load_pairs, split_folder
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler
from hazematching.model.calibration import bin_by_std, calibrate_arrays, calibration_error
from hazematching.model.trained import load_trained_model

CANDIDATES = ("spread around the sample mean", "distance from the head")


def candidate_stds(model_path: Path, folder: Path, sampling: SamplingConfig) -> dict[str, object]:
    """Both candidate stds and the head's error for every pixel of the pairs in `folder`, in
    per-image network units (each image's output scale divided out)."""
    model = load_trained_model(model_path)
    sampler = build_sampler(model, sampling, torch.device("cpu"), calibrated=False)
    pairs = load_pairs(folder)
    found: dict[str, list[np.ndarray]] = {name: [] for name in (*CANDIDATES, "error")}
    with torch.no_grad():
        for hazy, target in zip(pairs.inputs, pairs.targets, strict=True):
            result = predict_planes(model, sampler, hazy[None])
            unit = model.normalization.intensity_map(hazy).output_scale
            samples = result.samples[0]  # (K, Y, X)
            head = result.mmse[0]
            found[CANDIDATES[0]].append(result.std[0].ravel() / unit)
            distance = np.sqrt(np.mean((samples - head) ** 2, axis=0))
            found[CANDIDATES[1]].append(distance.ravel() / unit)
            found["error"].append((head - target).ravel() / unit)
    return {name: np.concatenate(values) for name, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="checkpoint or run folder with an MMSE head")
    parser.add_argument("--heldout", type=Path, required=True, help="simulated val/test pairs")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--bins", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    sampling = SamplingConfig(samples=args.samples, steps=args.steps, keep_samples=True)
    val = candidate_stds(args.model, split_folder(args.heldout, "val"), sampling)
    test = candidate_stds(args.model, split_folder(args.heldout, "test"), sampling)
    results = {}
    for name in CANDIDATES:
        fitted, _, _ = calibrate_arrays(val[name], val["error"], args.bins)
        calibrated = fitted.std_scale * test[name] + fitted.std_offset
        rms_ratio = float(np.sqrt(np.mean(calibrated**2) / np.mean(test["error"] ** 2)))
        results[name] = {
            "std_scale": fitted.std_scale,
            "std_offset": fitted.std_offset,
            "ence_val_after_fit": fitted.error_after,
            "ence_test_raw": calibration_error(bin_by_std(test[name], test["error"], args.bins)),
            "ence_test_calibrated": calibration_error(
                bin_by_std(calibrated, test["error"], args.bins)
            ),
            "test_std_over_error_rms": rms_ratio,
        }
        print(name, results[name], flush=True)
    write_result(
        args.out,
        {
            "model": str(args.model),
            "heldout": str(args.heldout),
            "sampling": sampling.model_dump(mode="json"),
            "candidates": results,
        },
    )


if __name__ == "__main__":
    main()
