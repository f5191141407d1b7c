"""Models on real widefield images as cameras wrote them: tile seams and units.

Real micrographs have no confocal partner, so nothing here scores fidelity. For every model and
every real image (one channel, as the file holds it) in three recordings (as written; the same
values times 16, as a 16-bit camera would write a 12-bit scene; divided by 16 and rounded, as an
8-bit camera would), this measures with the model's stored sampling and calibration:
- `std_seams`: `seam_ratio` of the std map at the sampler's tile borders (1: no seams; the
  failure of a model used outside its training intensities is a std that breaks into tiles);
- `mmse_units_error`: max |MMSE(recording) / gain - MMSE(as written)| over the as-written MMSE's
  range (0 for a model whose result only changes units with the camera);
- `mmse_correlation`: the Pearson correlation of the two MMSEs;
- whether every output value is finite.
Results go to JSON and a Markdown table.

    python benchmarks/real_images.py \
        --model bundled=model_zoo/hazematching-simulated/training/best.pt \
        --image bbbc022=../shared/data/real/bbbc022_u2os_ixm_A02_s9.tif:0 \
        --out docs/results/intensities/real-images.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from record import write_result

from hazematching.config import SamplingConfig
from hazematching.data.tiff import read_single
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler, tile_edges
from hazematching.metrics.distortion import seam_ratio
from hazematching.model.trained import load_trained_model

RECORDINGS = {
    "as written": (1.0, False),
    "16-bit (x16)": (16.0, False),
    "8-bit (/16)": (1 / 16, True),
}


def measure(model_path: Path, image: np.ndarray) -> dict[str, dict[str, float | bool]]:
    """The numbers of one model on one image in every recording."""
    model = load_trained_model(model_path)
    sampler = build_sampler(model, SamplingConfig(), torch.device("cpu"))  # its calibrated K x T
    edges = (tile_edges(sampler, image.shape[0]), tile_edges(sampler, image.shape[1]))
    results: dict[str, dict[str, float | bool]] = {}
    reference = None
    with torch.no_grad():
        for name, (gain, rounded) in RECORDINGS.items():
            recorded = image * gain
            if rounded:
                recorded = np.round(recorded)
            result = predict_planes(model, sampler, recorded[None].astype(np.float32))
            mmse, std = result.mmse[0] / gain, result.std[0] / gain
            if reference is None:
                reference = mmse
            span = float(np.ptp(reference)) or 1.0
            results[name] = {
                "finite": bool(np.isfinite(result.mmse).all() and np.isfinite(result.std).all()),
                "std_seams": seam_ratio(std, *edges),
                "mmse_units_error": float(np.abs(mmse - reference).max() / span),
                "mmse_correlation": float(np.corrcoef(mmse.ravel(), reference.ravel())[0, 1]),
            }
            print(model_path, name, results[name], flush=True)
    return results


def markdown(table: dict[str, dict[str, dict[str, dict[str, float | bool]]]]) -> str:
    """One row per model, image and recording."""
    lines = [
        "| model | image | recording | std seams at tile borders | MMSE change beyond units "
        "(of its range) | MMSE correlation with as written | finite |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model, images in table.items():
        for image, recordings in images.items():
            for recording, r in recordings.items():
                lines.append(
                    f"| {model} | {image} | {recording} | {r['std_seams']:.3f} | "
                    f"{100 * r['mmse_units_error']:.2f} % | {r['mmse_correlation']:.4f} | "
                    f"{'yes' if r['finite'] else 'no'} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="NAME=CHECKPOINT")
    parser.add_argument("--image", action="append", required=True, help="NAME=TIFF[:CHANNEL]")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    images = {}
    for entry in args.image:
        name, spec = entry.split("=", 1)
        path, _, channel = spec.partition(":")
        images[name] = read_single(Path(path), int(channel) if channel else None)[0]
    table = {}
    for entry in args.model:
        name, path = entry.split("=", 1)
        table[name] = {image: measure(Path(path), pixels) for image, pixels in images.items()}
    write_result(args.out, {"models": dict(m.split("=", 1) for m in args.model), "results": table})
    args.out.with_suffix(".md").write_text(markdown(table))


if __name__ == "__main__":
    main()
