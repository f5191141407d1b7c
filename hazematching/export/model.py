"""`hazematching export`: any exportable model (checkpoint or Richardson-Lucy) to a package."""

from __future__ import annotations

from pathlib import Path

from ..inference.loader import open_model
from .deconvolution_package import export_richardson_lucy
from .package import ExportResult, export_package
from .recipe import ExportRecipe, default_recipe


def export_model(
    model_path: Path, out_path: Path, recipe: ExportRecipe | None = None
) -> ExportResult:
    """Export a checkpoint (or run folder) or a Richardson-Lucy model as a tested package."""
    recipe = recipe or default_recipe()
    source = open_model(model_path, "export", sampling=recipe.sampling is not None)
    if source.kind == "richardson-lucy":
        return export_richardson_lucy(source.path, out_path, recipe)
    return export_package(source.path, out_path, recipe)
