"""Calibration figures: RMSE against RMV per bin, and the per-bin calibration error."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ..model.calibration import CalibrationBins, calibration_error
from ..plots import save_figure


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
    save_figure(figure, path)


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
    save_figure(figure, path)
