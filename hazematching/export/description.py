"""The BioImage.IO model description (spec 0.5), built from `bioimageio.spec` classes.

One input (batch, channel, y, x), one output whose channels are mmse, std [, samples]: the
shape QuPath, ilastik and deepImageJ accept. The scripted sampler maps intensities to the
network's z-scores and back by itself, so the description declares no pre- or postprocessing
(beyond the `ensure_dtype` bioimageio.spec adds): consumer tools implement those steps unevenly
(see `model/sampler.py`), and a model without them gives the same numbers in every tool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bioimageio.spec.model import v0_5

from .._version import __version__
from ..config import SamplingConfig
from ..data.normalization import DatasetNormalization
from ..errors import HazeMatchingError
from ..inference.sampling import evaluations_per_image
from ..model.checkpoint import Checkpoint
from .recipe import PAPER_CITATION, PAPER_URL, ExportRecipe

INPUT_ID = v0_5.TensorId("hazy")
OUTPUT_ID = v0_5.TensorId("dehazed")
RELATIVE_TOLERANCE = 1e-3
ABSOLUTE_TOLERANCE_FRACTION = 1e-3  # of the test output's value range
ZOO_TOLERANCE_CAP = 0.01  # bioimageio.spec: absolute tolerance <= 1% of the test output's maximum


def absolute_tolerance(output: np.ndarray) -> float:
    """Absolute reproducibility tolerance of a test output: 0.1% of its value range.

    bioimageio.spec also caps it at 1% of the output's maximum, so an output without positive
    values cannot be described; that test image is refused with a pointer to a better one.
    """
    peak = float(output.max())
    if peak <= 0:
        raise HazeMatchingError(
            f"the test output has no positive values (maximum {peak:.4g}), which BioImage.IO "
            "cannot check; pick a test image with structure (recipe test_image)"
        )
    spread = ABSOLUTE_TOLERANCE_FRACTION * float(output.max() - output.min())
    return min(max(spread, 1e-12), 0.99 * ZOO_TOLERANCE_CAP * peak)  # 0.99: float rounding


@dataclass(frozen=True)
class PackageFiles:
    """Files written into the package folder before the description is built."""

    folder: Path
    test_input: Path
    sample_input: Path
    torchscript: Path
    state_dict: Path
    architecture: Path
    environment: Path
    cover: Path
    documentation: Path


def minimum_input_size(multiple: int, halo: int) -> int:
    """Smallest declared input side: a multiple of the network's that exceeds twice the halo."""
    return multiple * (2 * halo // multiple + 1)


def _space_axes_in(multiple: int, halo: int) -> list[v0_5.SpaceInputAxis]:
    size = v0_5.ParameterizedSize(min=minimum_input_size(multiple, halo), step=multiple)
    return [v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=size) for a in ("y", "x")]


def _space_axes_out(halo: int) -> list[v0_5.SpaceOutputAxis | v0_5.SpaceOutputAxisWithHalo]:
    """Output y, x: the input's size; `halo` pixels per side are cropped from consumer tiles."""
    axes: list[v0_5.SpaceOutputAxis | v0_5.SpaceOutputAxisWithHalo] = []
    for name in ("y", "x"):
        size = v0_5.SizeReference(tensor_id=INPUT_ID, axis_id=v0_5.AxisId(name))
        if halo:
            axes.append(v0_5.SpaceOutputAxisWithHalo(id=v0_5.AxisId(name), size=size, halo=halo))
        else:
            axes.append(v0_5.SpaceOutputAxis(id=v0_5.AxisId(name), size=size))
    return axes


def input_tensor(
    space_axes: list[v0_5.SpaceInputAxis],
    test_input: Path,
    sample_input: Path,
    description: str,
    preprocessing: list[Any],
) -> v0_5.InputTensorDescr:
    """The single input `hazy` (batch, channel `widefield`, y, x)."""
    return v0_5.InputTensorDescr(
        id=INPUT_ID,
        description=description,
        axes=[
            v0_5.BatchAxis(),
            v0_5.ChannelAxis(channel_names=[v0_5.Identifier("widefield")]),
            *space_axes,
        ],
        test_tensor=v0_5.FileDescr(source=test_input),
        sample_tensor=v0_5.FileDescr(source=sample_input),
        data=v0_5.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=preprocessing,
    )


def output_tensor(
    channel_names: list[str],
    space_axes: list[v0_5.SpaceOutputAxis | v0_5.SpaceOutputAxisWithHalo],
    test_output: Path,
    sample_output: Path,
    description: str,
    postprocessing: list[Any],
) -> v0_5.OutputTensorDescr:
    """The single output `dehazed` (batch, channel, y, x) with the given channel names."""
    return v0_5.OutputTensorDescr(
        id=OUTPUT_ID,
        description=description,
        axes=[
            v0_5.BatchAxis(),
            v0_5.ChannelAxis(channel_names=[v0_5.Identifier(c) for c in channel_names]),
            *space_axes,
        ],
        test_tensor=v0_5.FileDescr(source=test_output),
        sample_tensor=v0_5.FileDescr(source=sample_output),
        data=v0_5.IntervalOrRatioDataDescr(type="float32"),
        postprocessing=postprocessing,
    )


def recipe_fields(recipe: ExportRecipe, documentation: Path, cover: Path) -> dict[str, Any]:
    """Name, description, authors, maintainers, citation, licence, tags, version, card, cover."""
    return {
        "name": recipe.name,
        "description": recipe.description,
        "authors": [v0_5.Author(**a.model_dump(exclude_none=True)) for a in recipe.authors],
        "maintainers": [
            v0_5.Maintainer(**m.model_dump(exclude_none=True)) for m in recipe.maintainers
        ],
        "cite": [v0_5.CiteEntry(text=PAPER_CITATION, url=v0_5.HttpUrl(PAPER_URL))],
        "license": v0_5.LicenseId(recipe.license),
        "tags": list(recipe.tags),
        "version": v0_5.Version(recipe.version),
        "documentation": v0_5.FileDescr(source=documentation),
        "covers": [v0_5.FileDescr(source=cover)],
    }


def bioimageio_config(tolerance: float, nickname: str) -> v0_5.BioimageioConfig:
    """The reproducibility tolerance of the output (see `absolute_tolerance`) and the nickname.

    JDLL (deepImageJ, Icy) names a spec-0.5 model by its `id` or, before the zoo has assigned
    one, by `config.bioimageio.nickname`; with neither it fails on the model and leaves it out of
    its local model list (`ModelDescriptorV05`).
    """
    return v0_5.BioimageioConfig(
        nickname=nickname,
        reproducibility_tolerance=[
            v0_5.ReproducibilityTolerance(
                relative_tolerance=RELATIVE_TOLERANCE,
                absolute_tolerance=tolerance,
                mismatched_elements_per_million=100,
                output_ids=[OUTPUT_ID],
            )
        ],
    )


def build_description(
    *,
    recipe: ExportRecipe,
    checkpoint: Checkpoint,
    sampling: SamplingConfig,
    channel_names: list[str],
    files: PackageFiles,
    test_output: Path,
    sample_output: Path,
    architecture_kwargs: dict[str, Any],
    tolerance: float,
    halo: int,
) -> v0_5.ModelDescr:
    """The complete model description; file descriptors hash the files as they are now."""
    norm = checkpoint.normalization
    torch_version = v0_5.Version(str(torch.__version__).split("+")[0])
    multiple = checkpoint.config.network.size_multiple

    hazy = input_tensor(
        _space_axes_in(multiple, halo),
        files.test_input,
        files.sample_input,
        "widefield (hazy) image, raw intensities",
        [],
    )
    dehazed = output_tensor(
        channel_names,
        _space_axes_out(halo),
        test_output,
        sample_output,
        "channels: "
        + ", ".join(channel_names)
        + " (posterior mean, standard deviation, samples) in "
        + (
            "target intensities"
            if isinstance(checkpoint.normalization, DatasetNormalization)
            else "input intensities"
        ),
        [],
    )
    weights = v0_5.WeightsDescr(
        pytorch_state_dict=v0_5.PytorchStateDictWeightsDescr(
            source=files.state_dict,
            architecture=v0_5.ArchitectureFromFileDescr(
                source=files.architecture,
                callable=v0_5.Identifier("PackagedSampler"),
                kwargs=architecture_kwargs,
            ),
            pytorch_version=torch_version,
            dependencies=v0_5.FileDescr(source=files.environment),
        ),
        torchscript=v0_5.TorchscriptWeightsDescr(
            source=files.torchscript,
            pytorch_version=torch_version,
            parent="pytorch_state_dict",
            comment="scripted Euler sampler (hash noise, K samples, T steps) around the traced "
            "velocity network",
        ),
    )
    return v0_5.ModelDescr(
        **recipe_fields(recipe, files.documentation, files.cover),
        inputs=[hazy],
        outputs=[dehazed],
        weights=weights,
        config=v0_5.Config(
            bioimageio=bioimageio_config(
                tolerance, recipe.package_nickname(checkpoint.config.method)
            ),
            # The sampler tiles and blends inside the model. JDLL (deepImageJ) with tiling off
            # leaves axes that have a size step at tile size -1, which its own step check then
            # rejects (TileCalculator/TileMaker); with tiling on it takes the whole image plus
            # the halo as one tile where its size rounds to the step, cropping the halo.
            deepimagej={"allow_tiling": True},
            hazematching={
                "version": __version__,
                "training": checkpoint.config.model_dump(mode="json"),
                "normalization": norm.model_dump(mode="json"),
                "sampling": sampling.model_dump(mode="json"),
                "evaluations_per_image": evaluations_per_image(checkpoint.config, sampling),
                "calibration": (
                    checkpoint.calibration.model_dump(mode="json")
                    if checkpoint.calibration
                    else None
                ),
                "step": checkpoint.step,
            },
        ),
    )


def reference_output(descr: v0_5.ModelDescr) -> np.ndarray:
    """The output for the test input exactly as `bioimageio.core.test_model` computes it.

    Preprocessing, forward and postprocessing without halo padding or output cropping, with the
    package's TorchScript weights on the CPU.
    """
    from bioimageio.core import create_prediction_pipeline
    from bioimageio.core.digest_spec import get_test_input_sample

    with create_prediction_pipeline(descr, weight_format="torchscript", devices=["cpu"]) as pipe:
        sample = get_test_input_sample(descr)
        result = pipe.predict_sample_without_blocking(
            sample, skip_input_padding=True, skip_output_cropping=True
        )
    return np.asarray(result.members[OUTPUT_ID].data, dtype=np.float32)
