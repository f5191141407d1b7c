"""Running an exported model package through bioimageio.core (none of our sampling code)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..bioimage.reading import recorded_settings
from ..data.normalization import Normalization, normalization_from

if TYPE_CHECKING:
    from bioimageio.spec.model.v0_5 import ModelDescr


def package_normalization(descr: ModelDescr) -> Normalization | None:
    """The normalisation a package applies inside, as its exporter recorded it (None for a
    package that records none)."""
    stored = recorded_settings(descr).get("normalization")
    return normalization_from(stored) if stored else None


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
