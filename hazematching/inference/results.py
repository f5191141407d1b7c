"""Writing one dehazed image: the ImageJ TIFF of its channels and the PNG preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.tiff import write_tiff
from ..plots import image_row

PREVIEW_SAMPLES = 2


def write_result(
    out_dir: Path, name: str, image: np.ndarray, stack: np.ndarray, names: list[str]
) -> Path:
    """Write `<name>.tif` (CYX for one plane, ZCYX for a stack) and the preview `<name>.png`.

    The preview shows the middle plane: input | MMSE | std | the first samples when kept.
    """
    path = out_dir / f"{name}.tif"
    if stack.shape[0] == 1:
        write_tiff(path, stack[0], "CYX", names)
    else:
        write_tiff(path, stack, "ZCYX", names)
    middle = stack.shape[0] // 2
    shown = [(n, stack[middle, c]) for c, n in enumerate(names)][: 2 + PREVIEW_SAMPLES]
    image_row(out_dir / f"{name}.png", [("input", image[middle]), *shown])
    return path
