"""Export the Richardson-Lucy baseline as a BioImage.IO package (TorchScript weights only).

The package has the same input and output layout as a HazeMatching package (one input `hazy`,
one output `dehazed` with channels `mmse` and `std`), works on raw intensities (no pre- or
postprocessing), and holds the PSF inside the scripted module. `std` is zero: RL is a point
predictor. Like `export_package`, it keeps the zip only if `bioimageio.core.test_model` passed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from bioimageio.spec.model import v0_5

from .._version import __version__
from ..data.tiff import INPUT_CHANNEL, read_planes
from ..errors import HazeMatchingError
from ..inference.loader import open_model
from ..model.richardson_lucy import load_richardson_lucy
from .card import closing_lines, evaluation_markdown, opening_lines
from .cover import write_cover
from .description import (
    INPUT_ID,
    absolute_tolerance,
    bioimageio_config,
    input_tensor,
    output_tensor,
    recipe_fields,
)
from .description import reference_output as reference
from .package import (
    ExportResult,
    centre_crop,
    export_folder,
    package_path,
    save_tested_package,
    write_tensor,
)
from .recipe import PAPER_CITATION, ExportRecipe, default_recipe

CHANNELS = ("mmse", "std")
MIN_SIZE = 16


def _test_image(recipe: ExportRecipe, psf_source: str) -> tuple[np.ndarray, Path]:
    """The recipe's test image, or the first validation pair next to the PSF's folder."""
    if recipe.test_image is not None:
        path = recipe.test_image
    else:
        val = sorted((Path(psf_source).parent / "val").glob("*.tif"))
        if not val:
            raise HazeMatchingError("no test image: pass --test-image (a hazy TIFF)")
        path = val[0]
    planes = read_planes(path, channels=None)
    if planes.shape[1] > 2:
        raise HazeMatchingError(f"test image has {planes.shape[1]} channels", path)
    return planes[0, INPUT_CHANNEL if planes.shape[1] == 2 else 0], path


def _card(
    recipe: ExportRecipe,
    iterations: int,
    psf_source: str,
    curve: list[float],
    evaluation: str | None,
) -> str:
    return "\n".join(
        [
            *opening_lines(recipe),
            f"Richardson-Lucy deconvolution with {iterations} iterations and a fixed 2D PSF "
            f"(from `{psf_source}`), a classical baseline for dehazing. Input: one widefield image "
            "(batch, channel, y, x; any size of at least 16 px) in raw intensities. Output: "
            "channels `mmse` (the deconvolved image, in input intensities) and `std` (zero: a "
            "point predictor has no uncertainty).",
            "",
            "## Validation",
            "",
            f"The iteration count maximised the mean range-invariant PSNR on validation pairs "
            f"({max(curve):.2f} dB; 1 iteration: {curve[0]:.2f} dB, {len(curve)} iterations: "
            f"{curve[-1]:.2f} dB). `bioimageio.core.test_model` passed at export.",
            "",
            *closing_lines(
                recipe,
                evaluation,
                "Only as good as the PSF: a 2D deconvolution cannot separate the out-of-focus "
                "light of a thick sample from in-focus structure, and more iterations amplify "
                "noise.",
                f"Baseline of {PAPER_CITATION}",
            ),
        ]
    )


def export_richardson_lucy(
    model_path: Path, out_path: Path, recipe: ExportRecipe | None = None
) -> ExportResult:
    """Package a Richardson-Lucy model (`richardson_lucy.pt`) and test it with bioimageio.core."""
    start = time.perf_counter()
    recipe = recipe or default_recipe()
    out_path = package_path(out_path)
    source = open_model(model_path, "export", sampling=recipe.sampling is not None)
    if source.kind != "richardson-lucy":
        raise HazeMatchingError("not a Richardson-Lucy model", source.path)
    model = load_richardson_lucy(source.file)
    image, source = _test_image(recipe, model.psf_source)
    hazy = centre_crop(image, recipe.test_size or 128, 1, source)
    if hazy.shape[0] < MIN_SIZE:
        raise HazeMatchingError(f"test image smaller than {MIN_SIZE} px", source)
    evaluation = evaluation_markdown(recipe.evaluation, model_path, None)
    with export_folder(recipe) as folder:
        module = model.module()
        module.save(str(folder / "richardson_lucy_torchscript.pt"))
        input_npy, input_tif = write_tensor(folder, "test_input", hazy[None, None])
        with torch.no_grad():
            library = module(torch.from_numpy(hazy)[None, None]).numpy()
        write_cover(folder / "cover.png", hazy, library[0, 0])  # std is zero: not shown
        (folder / "README.md").write_text(
            _card(recipe, model.iterations, model.psf_source, model.curve, evaluation)
        )

        def describe(output: np.ndarray) -> v0_5.ModelDescr:
            output_npy, output_tif = write_tensor(folder, "test_output", output)
            size = v0_5.ParameterizedSize(min=MIN_SIZE, step=1)
            space_in = [v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=size) for a in ("y", "x")]
            space_out = [
                v0_5.SpaceOutputAxis(
                    id=v0_5.AxisId(a),
                    size=v0_5.SizeReference(tensor_id=INPUT_ID, axis_id=v0_5.AxisId(a)),
                )
                for a in ("y", "x")
            ]
            fields = recipe_fields(recipe, folder / "README.md", folder / "cover.png")
            fields["tags"] += ["deconvolution", "richardson-lucy"]
            return v0_5.ModelDescr(
                **fields,
                inputs=[
                    input_tensor(
                        space_in, input_npy, input_tif, "widefield image, raw intensities", []
                    )
                ],
                outputs=[
                    output_tensor(
                        list(CHANNELS),
                        space_out,
                        output_npy,
                        output_tif,
                        "channels: mmse (deconvolved), std (zero)",
                        [],
                    )
                ],
                weights=v0_5.WeightsDescr(
                    torchscript=v0_5.TorchscriptWeightsDescr(
                        source=folder / "richardson_lucy_torchscript.pt",
                        pytorch_version=v0_5.Version(str(torch.__version__).split("+")[0]),
                    )
                ),
                config=v0_5.Config(
                    bioimageio=bioimageio_config(
                        absolute_tolerance(output), recipe.package_nickname("richardson-lucy")
                    ),
                    hazematching={
                        "version": __version__,
                        "method": "richardson-lucy",
                        "iterations": model.iterations,
                        "psf": model.psf_source,
                    },
                ),
            )

        save_tested_package(describe(reference(describe(library))), out_path)
    return ExportResult(out_path, "passed", time.perf_counter() - start, out_path.stat().st_size)
