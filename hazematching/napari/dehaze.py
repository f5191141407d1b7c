"""What the napari widget runs, without Qt: a layer's data in, result layers out.

The numbers come from the very `Runner` that `hazematching predict` uses, so a layer dehazed in
napari equals the TIFF `predict` writes with the same model and settings (for images below the
size `predict` samples block by block; a layer is always sampled whole). Each layer is one
channel: 2D, or a stack of planes along one axis. Bad layers and models raise the same one-line
`HazeMatchingError`s the command line prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import SamplingConfig
from ..data.tiff import require_one_plane_axis
from ..errors import HazeMatchingError
from ..inference.bundled import bundled_model
from ..inference.loader import open_model
from ..inference.runner import Runner, cached_runner
from ..model.checkpoint import load_checkpoint


class Cancelled(Exception):
    """The user pressed Cancel; raised from the progress callback between network passes."""


def layer_planes(data: np.ndarray, rgb: bool, name: str, axes: str) -> np.ndarray:
    """An image layer's data as float32 (planes, Y, X), refused as the CLI refuses files.

    `axes` names the layer's axes (napari's axis labels, e.g. "ZYX"); a layer with more than
    one axis of planes is refused, as are RGB layers and non-finite values.
    """
    array = np.asarray(data)
    if rgb:
        raise HazeMatchingError(
            f"expected 1 channel, found {array.shape[-1]} channel(s) in shape {array.shape} "
            "(an RGB layer); dehaze a single-channel widefield image",
            name,
        )
    if array.ndim < 2:
        raise HazeMatchingError(f"has shape {array.shape}: expected a 2D image", name)
    require_one_plane_axis(array, axes, None, name)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise HazeMatchingError(f"has data of type {array.dtype}, not real numbers", name)
    planes = array.astype(np.float32, copy=False).reshape(-1, *array.shape[-2:])
    if not np.isfinite(planes).all():
        raise HazeMatchingError("contains NaN or infinite values", name)
    return planes


@dataclass(frozen=True)
class ModelChoice:
    """A model the widget can run: its path and, for a package, its baked-in sampling."""

    path: Path
    package_sampling: SamplingConfig | None

    @property
    def takes_sampling(self) -> bool:
        """Whether samples, steps and seed can be chosen (not for a package)."""
        return self.package_sampling is None


def choose_model(path: Path | str | None) -> ModelChoice:
    """The bundled model (None) or the checkpoint or package at `path`, checked."""
    path = bundled_model() if path is None or str(path) == "" else Path(path)
    source = open_model(path, "predict")
    if source.kind != "package":
        load_checkpoint(source.file)  # a file that is not a checkpoint is refused now
        return ModelChoice(source.path, None)
    from ..bioimage.reading import load_package, recorded_settings

    baked = recorded_settings(load_package(source.path)).get("sampling")
    return ModelChoice(source.path, SamplingConfig.model_validate(baked) if baked else None)


def load(choice: ModelChoice, sampling: SamplingConfig, device: str = "auto") -> Runner:
    """The runner of a chosen model (a package samples as baked in, ignoring `sampling`)."""
    return cached_runner(choice.path, sampling if choice.takes_sampling else None, device)


def dehaze(
    runner: Runner,
    planes: np.ndarray,
    on_progress: Callable[[int], None],
    cancelled: Callable[[], bool],
) -> np.ndarray:
    """(planes, C, Y, X) outputs of `runner`; `Cancelled` as soon as `cancelled()` says so."""

    def progress(done: int) -> None:
        if cancelled():
            raise Cancelled
        on_progress(done)

    return runner.run(planes, progress, None)


@dataclass(frozen=True)
class ResultLayer:
    """One layer to add: data, name and napari `add_image` keyword arguments."""

    data: np.ndarray
    name: str
    options: dict[str, object] = field(default_factory=dict)


#: Colormaps of the result layers: the std in a colour scale (bright = unsure).
STD_COLORMAP = "magma"


def result_layers(
    name: str,
    stack: np.ndarray,
    channel_names: list[str],
    scale: tuple[float, ...],
    translate: tuple[float, ...],
    plane_shape: tuple[int, ...],
) -> list[ResultLayer]:
    """`<name> mmse`, `<name> std` and, when kept, `<name> samples` (samples first).

    `plane_shape` is the input layer's shape without Y, X (() for a 2D layer), so results
    overlay the input: same shape, scale and translate; samples add a leading axis.
    """
    shape = (*plane_shape, *stack.shape[-2:])
    placed = {"scale": tuple(scale), "translate": tuple(translate)}
    layers = [
        ResultLayer(stack[:, 0].reshape(shape), f"{name} mmse", dict(placed)),
        ResultLayer(
            stack[:, 1].reshape(shape), f"{name} std", {**placed, "colormap": STD_COLORMAP}
        ),
    ]
    if len(channel_names) > 2:
        samples = np.moveaxis(stack[:, 2:], 1, 0).reshape(len(channel_names) - 2, *shape)
        layers.append(
            ResultLayer(
                samples,
                f"{name} samples",
                {"scale": (1.0, *scale), "translate": (0.0, *translate)},
            )
        )
    return layers


STD_NOTE = (
    "The std is the spread of the posterior samples at each pixel: where it is bright the model "
    "is unsure, and the MMSE there is a guess among several plausible images. It is calibrated "
    "on held-out pairs so that it matches the typical error of the MMSE, for images like those "
    "the model was trained on; on other microscopes it can be too small."
)


def calibration_plot(choice: ModelChoice) -> Path | None:
    """The calibration plot a model ships (a package's `training/calibration.png`), if any."""
    folder = choice.path if choice.path.is_dir() else choice.path.parent
    for candidate in (folder / "training" / "calibration.png", folder / "calibration.png"):
        if candidate.is_file():
            return candidate
    return None
