"""Cover image of a package: panels side by side (hazy | MMSE | std), as a small PNG."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

GAP = 4  # white pixels between panels
MIN_PANEL = 256  # panels are enlarged (nearest neighbour) to at least this size


def to_uint8(image: np.ndarray, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """Percentile-stretch an image to 8 bits for display."""
    lo, hi = np.percentile(image, [low, high])
    scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return (np.clip(scaled, 0.0, 1.0) * 255).round().astype(np.uint8)


def side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    """Display-stretched 2D panels in one row, enlarged to at least MIN_PANEL pixels high."""
    factor = max(1, -(-MIN_PANEL // panels[0].shape[0]))
    tiles = [np.kron(to_uint8(p), np.ones((factor, factor), np.uint8)) for p in panels]
    height = tiles[0].shape[0]
    gap = np.full((height, GAP), 255, np.uint8)
    row: list[np.ndarray] = []
    for tile in tiles:
        row.extend([tile, gap])
    return np.concatenate(row[:-1], axis=1)


def write_cover(path: Path, *panels: np.ndarray) -> None:
    """Write the panels (e.g. hazy, MMSE, std) side by side as a greyscale PNG."""
    iio.imwrite(path, side_by_side(list(panels)))
