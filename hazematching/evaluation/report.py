"""The report of `hazematching evaluate`: per-method records on disk, tables and the summary.

Reading and formatting only: the model card imports this module without the evaluation's
metrics or models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import HazeMatchingError
from ..fileio import write_json, write_text
from ..plots import perception_distortion_plot

METHODS_FOLDER = "methods"
SUMMARY = "summary.json"


_COLUMNS = (
    ("MMSE RI-PSNR", ("mmse", "ri_psnr"), "{:.2f}"),
    ("MMSE MS-SSIM", ("mmse", "ms_ssim"), "{:.4f}"),
    ("MMSE MicroMS3IM", ("mmse", "micro_ms3im"), "{:.4f}"),
    ("FRC 1/7 (px)", ("mmse", "frc_resolution_px_1_7"), "{:.2f}"),
    ("FRC 0.5 (px)", ("mmse", "frc_resolution_px_0_5"), "{:.2f}"),
    ("sample RI-PSNR", ("sample", "ri_psnr"), "{:.2f}"),
    ("sample GMSD", ("sample", "gmsd"), "{:.4f}"),
    ("sample FSIM", ("sample", "fsim"), "{:.4f}"),
    ("sample spectral dist.", ("sample", "spectral_distance"), "{:.3f}"),
    ("sample SWD", ("sample", "swd"), "{:.4f}"),
    ("sample LPIPS", ("sample", "lpips"), "{:.4f}"),
    ("sample FID", ("sample", "fid"), "{:.1f}"),
    ("MMSE GMSD", ("mmse", "gmsd"), "{:.4f}"),
    ("MMSE FSIM", ("mmse", "fsim"), "{:.4f}"),
    ("MMSE spectral dist.", ("mmse", "spectral_distance"), "{:.3f}"),
    ("MMSE SWD", ("mmse", "swd"), "{:.4f}"),
)


def _cell(metrics: dict[str, Any], keys: tuple[str, str], fmt: str) -> str:
    value = metrics.get(keys[0], {}).get(keys[1])
    return "n/a" if value is None else fmt.format(value)


def _table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    columns = [c for c in _COLUMNS if any(_cell(m, c[1], c[2]) != "n/a" for _, m in rows)]
    lines = [
        "| " + " | ".join(["", *(c[0] for c in columns)]) + " |",
        "| " + " | ".join(["---"] * (len(columns) + 1)) + " |",
    ]
    for label, metrics in rows:
        lines.append(
            "| " + " | ".join([label, *(_cell(metrics, c[1], c[2]) for c in columns)]) + " |"
        )
    return lines


def method_markdown(record: dict[str, Any]) -> str:
    """Per-image and overall table of one method."""
    rows = [(m["image"], m) for m in record["per_image"]] + [("**mean**", record["overall"])]
    rows.append(("hazy input (mean)", {"mmse": record["overall"]["input"]}))
    lines = [
        f"# {record['name']}",
        "",
        f"{record['description']}; {record['images']} test images of `{record['data']}`.",
        "",
        *_table(rows),
        "",
        *_calibration_lines(record),
        *(f"- {line}" for line in record["skipped"]),
        "",
    ]
    return "\n".join(lines)


def _calibration_lines(record: dict[str, Any]) -> list[str]:
    numbers = record["overall"].get("calibration")
    if numbers is None:
        return ["No std (point predictor): no calibration check.", ""]
    raw, calibrated = numbers.get("raw_error"), numbers.get("calibrated_error")
    text = "Calibration on the test pixels (expected normalised calibration error, 0 = ideal):"
    if raw is not None:
        text += f" raw std {raw:.3f}"
    if calibrated is not None:
        text += f", calibrated std {calibrated:.3f}"
    elif raw is not None:
        text += " (no stored calibration)"
    return [text + ".", ""]


def load_records(out_dir: Path) -> list[dict[str, Any]]:
    """The per-method records of a report folder, in name order."""
    records = [json.loads(p.read_text()) for p in sorted((out_dir / METHODS_FOLDER).glob("*.json"))]
    if not records:
        raise HazeMatchingError("no evaluated methods", out_dir)
    return records


def comparison_markdown(records: list[dict[str, Any]]) -> list[str]:
    """What was measured on which data, the table of every method, methods and calibration."""
    first = records[0]
    input_row = {"mmse": first["overall"]["input"]}
    rows = [("hazy input", input_row)] + [(r["name"], r["overall"]) for r in records]
    calibration = [
        f"- {r['name']}: " + _calibration_lines(r)[0]
        for r in records
        if "calibration" in r["overall"]
    ]
    return [
        f"{first['images']} test images of `{first['data']}`. RI-PSNR: range-invariant PSNR (dB, "
        "higher is better); MS-SSIM, MicroMS3IM: higher is better; FRC: resolution in pixels "
        "where the Fourier ring correlation with the target drops below the threshold (lower "
        "is better); realism of single samples on 64 px patches: GMSD, spectral distance, LPIPS, "
        "FID are distances to the targets (lower = more like real targets), FSIM a similarity "
        "(higher is better); SWD: sliced Wasserstein distance of Laplacian-pyramid "
        "neighbourhoods of all test images to those of the targets (a weight-free FID, lower is "
        "better). Point predictors' samples are their single output.",
        "",
        *_table(rows),
        "",
        "Methods:",
        "",
        *(f"- {r['name']}: {r['description']}" for r in records),
        "",
        "Calibration:",
        "",
        *(calibration or ["- no method with a std"]),
        "",
        *(f"- {line}" for line in first["skipped"]),
        "",
    ]


def write_summary(out_dir: Path) -> Path:
    """Rebuild summary.md/.json and the perception-distortion plots from methods/*.json."""
    records = load_records(out_dir)
    first = records[0]
    lines = ["# Evaluation summary", "", *comparison_markdown(records)]
    for metric, label in (
        ("gmsd", "GMSD"),
        ("spectral_distance", "spectral distance"),
        ("swd", "SWD"),
        ("lpips", "LPIPS"),
    ):
        points = []
        if metric in first["overall"]["input"]:
            hazy = first["overall"]["input"]
            points.append(("hazy input", "input", hazy[metric], hazy["ri_psnr"]))
        for record in records:
            overall = record["overall"]
            if metric not in overall["mmse"]:
                continue
            points.append(
                (record["name"], "MMSE", overall["mmse"][metric], overall["mmse"]["ri_psnr"])
            )
            sample = overall.get("sample")
            if sample is not None and metric in sample:
                points.append((record["name"], "sample", sample[metric], sample["ri_psnr"]))
        if points:
            perception_distortion_plot(
                out_dir / f"perception_distortion_{metric}.png", points, label
            )
            lines.append(f"![perception-distortion, {label}](perception_distortion_{metric}.png)")
    write_text(out_dir / "summary.md", "\n".join(lines) + "\n")
    write_json(
        out_dir / SUMMARY,
        {"data": first["data"], "methods": {r["name"]: r["overall"] for r in records}},
    )
    return out_dir / "summary.md"
