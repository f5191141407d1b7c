"""`hazematching export`: any exportable model (checkpoint or Richardson-Lucy) to a package."""

from __future__ import annotations

from pathlib import Path

from ..inference.loader import locate_model
from .deconvolution_package import export_richardson_lucy
from .package import ExportResult, export_package
from .recipe import ExportRecipe


def export_model(
    model_path: Path, out_path: Path, recipe: ExportRecipe | None = None
) -> ExportResult:
    """Export a checkpoint (or run folder) or a Richardson-Lucy model as a tested package."""
    if locate_model(model_path).kind == "richardson-lucy":
        return export_richardson_lucy(model_path, out_path, recipe)
    # checkpoints, and packages, which `export_package` refuses with the loader's message
    return export_package(model_path, out_path, recipe)
