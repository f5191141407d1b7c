"""Running an exported model package through bioimageio.core (none of our sampling code)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import HazeMatchingError

if TYPE_CHECKING:
    from bioimageio.spec.model.v0_5 import ModelDescr

PACKAGE_DESCRIPTION = "rdf.yaml"


def is_package(path: Path) -> bool:
    """A .zip package or an unpacked package folder (one holding rdf.yaml)."""
    path = Path(path)
    return path.suffix == ".zip" or (path / PACKAGE_DESCRIPTION).is_file()


def load_package(path: Path) -> ModelDescr:
    """The validated model description of a package, with a one-line error otherwise."""
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model import v0_5

    from .github import package_github_users, unverified_github_users

    path = Path(path)
    if not path.exists():
        raise HazeMatchingError("model package not found", path)
    source = path / PACKAGE_DESCRIPTION if path.is_dir() else path
    try:
        with unverified_github_users(package_github_users(path)):
            descr = load_description(source, perform_io_checks=True)
    except Exception as error:  # corrupt zip, unreadable YAML ...
        raise HazeMatchingError(f"cannot open model package ({error})", path) from error
    if isinstance(descr, InvalidDescr) or not isinstance(descr, v0_5.ModelDescr):
        raise HazeMatchingError("not a valid BioImage.IO model package (spec 0.5)", path)
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise HazeMatchingError("expected a package with one input and one output", path)
    return descr


def channel_names(descr: ModelDescr) -> list[str]:
    """Names of the output channels of a package."""
    for axis in descr.outputs[0].axes:
        if axis.type == "channel":
            return [str(name) for name in axis.channel_names]
    raise HazeMatchingError("the package output has no channel axis")


def run_package(
    descr: ModelDescr,
    planes: np.ndarray,
    device: str,
    on_plane: Callable[[], None],
) -> np.ndarray:
    """(planes, Y, X) intensities -> (planes, C, Y, X) outputs of the package, plane by plane."""
    from bioimageio.core import Tensor, create_prediction_pipeline
    from bioimageio.core.digest_spec import create_sample_for_model

    input_id, output_id = descr.inputs[0].id, descr.outputs[0].id
    outputs = []
    # The pipeline is opened once for all planes; bioimageio.core.predict() would open and
    # close it per call (and closing it twice waits forever in bioimageio.core 0.11).
    with create_prediction_pipeline(
        descr, weight_format="torchscript", devices=[device]
    ) as pipeline:
        for plane in planes:
            tensor = Tensor.from_numpy(plane[None, None], dims=("batch", "channel", "y", "x"))
            # the model pads, tiles and crops by itself: padding by the halo here would shift
            # the noise's pixel coordinates and change the samples
            sample = pipeline.predict_sample_without_blocking(
                create_sample_for_model(descr, inputs={input_id: tensor}, sample_id="image"),
                skip_input_padding=True,
                skip_output_cropping=True,
            )
            result = sample.members[output_id].transpose(["batch", "channel", "y", "x"])
            outputs.append(np.asarray(result.data[0], dtype=np.float32))
            on_plane()
    return np.stack(outputs)
