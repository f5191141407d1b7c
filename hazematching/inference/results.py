"""Writing one dehazed image: the TIFF of its channels (ImageJ or OME) and the PNG preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import OutputFormat
from ..data.metadata import ImageMetadata
from ..data.tiff import write_ome_tiff, write_tiff
from ..plots import image_row

PREVIEW_SAMPLES = 2


def write_result(
    out_dir: Path,
    name: str,
    image: np.ndarray,
    stack: np.ndarray,
    names: list[str],
    metadata: ImageMetadata | None = None,
    output_format: OutputFormat = OutputFormat.TIFF,
) -> Path:
    """Write the result (CYX for one plane; ZCYX or TCYX for a z-stack or time series) with the
    input's pixel size and z-spacing (`metadata`), and the preview `<name>.png`.

    The preview shows the middle plane: input | MMSE | std | the first samples when kept.
    """
    metadata = metadata or ImageMetadata()
    path = out_dir / output_format.file_name(name)
    data, axes = (stack[0], "CYX") if stack.shape[0] == 1 else (stack, f"{metadata.plane_axis}CYX")
    write = write_ome_tiff if output_format is OutputFormat.OME_TIFF else write_tiff
    write(path, data, axes, names, metadata)
    middle = stack.shape[0] // 2
    shown = [(n, stack[middle, c]) for c, n in enumerate(names)][: 2 + PREVIEW_SAMPLES]
    image_row(out_dir / f"{name}.png", [("input", image[middle]), *shown])
    return path
