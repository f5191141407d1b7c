"""Figures written as PNG files (matplotlib, no display needed), each written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .fileio import atomic_path
from .uncertainty.calibration import CalibrationBins, calibration_error


def _save(figure: Figure, path: Path) -> None:
    """Render without pyplot (no global figure state, no display backend) and write atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def calibration_plot(path: Path, before: CalibrationBins, after: CalibrationBins) -> None:
    """RMSE against RMV per bin, raw and calibrated, with standard errors and the line y = x."""
    figure = Figure(figsize=(4.5, 4.5))
    axis = figure.subplots()
    top = float(max(before.rmv.max(), after.rmv.max(), before.rmse.max())) * 1.05
    axis.plot([0, top], [0, top], color="0.6", linestyle="--", label="y = x (perfect calibration)")
    for bins, label, colour in (
        (before, "uncalibrated", "tab:red"),
        (after, "calibrated", "tab:blue"),
    ):
        axis.errorbar(
            bins.rmv,
            bins.rmse,
            yerr=bins.rmse_stderr,
            marker="o",
            markersize=3,
            color=colour,
            label=f"{label} (ENCE {calibration_error(bins):.3f})",
        )
    axis.set_xlabel("RMV: predicted std (z-scores of the target)")
    axis.set_ylabel("RMSE of the MMSE (z-scores of the target)")
    axis.set_xlim(0, top)
    axis.set_ylim(0, top)
    axis.legend(fontsize=8)
    _save(figure, path)


def calibration_error_plot(path: Path, before: CalibrationBins, after: CalibrationBins) -> None:
    """Per-bin normalised calibration error |RMV - RMSE| / RMSE, raw and calibrated."""
    figure = Figure(figsize=(5.5, 3.2))
    axis = figure.subplots()
    for bins, label, colour in (
        (before, "uncalibrated", "tab:red"),
        (after, "calibrated", "tab:blue"),
    ):
        axis.plot(
            range(1, len(bins.rmv) + 1),
            abs(bins.rmv - bins.rmse) / bins.rmse,
            marker="o",
            markersize=3,
            color=colour,
            label=label,
        )
    axis.set_xlabel("bin (by predicted std, equal pixel counts)")
    axis.set_ylabel("|RMV - RMSE| / RMSE")
    axis.legend(fontsize=8)
    _save(figure, path)


def image_row(path: Path, panels: list[tuple[str, np.ndarray | None]]) -> None:
    """Images side by side with titles, each scaled to its own 0.1-99.9 percentiles.

    A panel without an image (None) is left empty with its title, e.g. the std of a point
    predictor.
    """
    figure = Figure(figsize=(2.4 * len(panels), 2.6))
    axes = figure.subplots(1, len(panels))
    for axis, (title, image) in zip(axes, panels, strict=True):
        axis.set_axis_off()
        axis.set_title(title, fontsize=9)
        if image is not None:
            low, high = np.percentile(image, [0.1, 99.9])
            axis.imshow(image, cmap="magma" if title == "std" else "gray", vmin=low, vmax=high)
    _save(figure, path)


def perception_distortion_plot(
    path: Path, points: list[tuple[str, str, float, float]], realism_label: str
) -> None:
    """Distortion (y, higher is better) against a realism distance (x, lower is better).

    `points` are (method, kind, realism, distortion) with kind "MMSE", "sample" or "input";
    each method gets one colour, kinds get marker shapes.
    """
    figure = Figure(figsize=(5.5, 4.2))
    axis = figure.subplots()
    methods = list(dict.fromkeys(p[0] for p in points))
    markers = {"MMSE": "o", "sample": "*", "input": "s"}
    for index, method in enumerate(methods):
        colour = f"C{index}"
        for name, kind, realism, distortion in points:
            if name != method:
                continue
            axis.scatter(
                realism,
                distortion,
                marker=markers[kind],
                s=80 if kind == "sample" else 45,
                color=colour,
                label=f"{method} ({kind})",
            )
    axis.set_xlabel(f"{realism_label} to the target (lower = more realistic)")
    axis.set_ylabel("range-invariant PSNR (dB, higher = more faithful)")
    axis.legend(fontsize=7, loc="best")
    axis.grid(alpha=0.3)
    _save(figure, path)
