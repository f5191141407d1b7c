"""Figures written as PNG files (matplotlib, no display needed), each written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .fileio import atomic_path


def save_figure(figure: Figure, path: Path) -> None:
    """Render without pyplot (no global figure state, no display backend) and write atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


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
    save_figure(figure, path)


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
    save_figure(figure, path)


def kernel_figure(
    path: Path,
    initial: np.ndarray,
    learned: np.ndarray,
    reference: np.ndarray,
    record: dict[str, object],
) -> None:
    """Initial, learned and true kernel (same size, sum 1, one shared colour scale) and their
    profiles through the centre row, titled with their distances to the truth."""
    size = learned.shape[0]
    panels = [
        (f"initial (distance {record['distance_initial']:.2f})", initial / initial.sum()),
        (f"learned (distance {record['distance_learned']:.2f})", learned),
        ("true widefield PSF", reference),
    ]
    figure = Figure(figsize=(12, 2.8), layout="constrained")
    axes = figure.subplots(1, 4)
    high = max(float(image.max()) for _, image in panels)
    for axis, (title, image) in zip(axes, panels, strict=False):
        axis.imshow(image, cmap="magma", vmin=0, vmax=high)
        axis.set_title(title, fontsize=9)
        axis.set_axis_off()
    offsets = np.arange(size) - size // 2
    for title, image in panels:
        axes[3].plot(offsets, image[size // 2], label=title.split(" (")[0])
    axes[3].set_xlabel("pixels from the centre")
    axes[3].set_title("centre row", fontsize=9)
    axes[3].legend(fontsize=7)
    save_figure(figure, path)
