"""One interface over every way to dehaze an image: checkpoints, packages, Richardson-Lucy.

`load_restorer` opens a checkpoint of any method (HazeMatching, InDI, U-Net), an exported
package, or a Richardson-Lucy model file, and returns a `Restorer` whose `run` maps one 2D hazy
image to its MMSE, its raw (uncalibrated) std where it has one, and its single samples. The
evaluation treats all methods alike through it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bioimage.reading import channel_names, load_package
from ..config import SamplingConfig
from ..inference.loader import open_model
from ..inference.package import package_normalization, run_package
from ..inference.planes import predict_planes
from ..inference.sampling import build_sampler, method_sampling
from ..model.calibration import Calibration
from ..model.richardson_lucy import deconvolve, load_richardson_lucy
from ..model.trained import load_trained_model
from ..runtime import resolve_device


@dataclass(frozen=True)
class Restoration:
    """Results for one image in target intensities (or the method's own units)."""

    mmse: np.ndarray  # (Y, X)
    std: np.ndarray | None  # (Y, X), uncalibrated; None for point predictors
    samples: np.ndarray | None  # (K, Y, X); a point predictor's single output; None if unknown
    std_unit: float = 1.0  # divide this image's std in target intensities by it for z-scores


@dataclass(frozen=True)
class Restorer:
    """A loaded method: how to run it and what its std means."""

    name: str
    description: str
    run: Callable[[np.ndarray], Restoration]
    calibration: Calibration | None = None
    std_is_calibrated: bool = False  # packages return the calibrated std only


def _checkpoint_restorer(path: Path, sampling: SamplingConfig, device: str) -> Restorer:
    model = load_trained_model(path)
    config = model.config
    sampling = method_sampling(config, sampling, model.calibration).model_copy(
        update={"keep_samples": True}
    )
    sampler = build_sampler(model, sampling, resolve_device(device), calibrated=False)
    point = config.point_predictor

    def run(hazy: np.ndarray) -> Restoration:
        result = predict_planes(model, sampler, hazy[None])
        samples = result.samples[0]
        std = None if point or sampling.samples < 2 else result.std[0]
        unit = model.normalization.intensity_map(hazy).output_scale
        return Restoration(result.mmse[0], std, samples, unit)

    name = config.method if config.method != "indi" else f"indi-{sampling.steps}"
    description = (
        f"{config.method} checkpoint {path}, "
        + ("one step" if point else f"{sampling.samples} samples x {sampling.steps} steps")
        + f", seed {sampling.seed}"
    )
    return Restorer(
        name,
        description,
        run,
        model.calibration,
    )


def _package_restorer(path: Path, device: str) -> Restorer:
    descr = load_package(path)
    names = channel_names(descr)
    sample_channels = [i for i, n in enumerate(names) if n.startswith("sample_")]
    normalization = package_normalization(descr)
    torch_device = str(resolve_device(device))

    def run(hazy: np.ndarray) -> Restoration:
        out = run_package(descr, hazy[None], torch_device, lambda: None)[0]
        samples = out[sample_channels] if sample_channels else None
        unit = normalization.intensity_map(hazy).output_scale if normalization else 1.0
        return Restoration(out[names.index("mmse")], out[names.index("std")], samples, unit)

    return Restorer(
        re.sub(r"[^a-z0-9_]+", "-", str(descr.name).lower()).strip("-") or "package",
        f"package {path}" + ("" if sample_channels else " (no sample channels)"),
        run,
        None,
        std_is_calibrated=True,
    )


def _richardson_lucy_restorer(path: Path) -> Restorer:
    model = load_richardson_lucy(path)
    module = model.module()

    def run(hazy: np.ndarray) -> Restoration:
        estimate = deconvolve(module, hazy)
        return Restoration(estimate, None, estimate[None])

    return Restorer(
        "richardson-lucy",
        f"Richardson-Lucy, {model.iterations} iterations, PSF {model.psf_source}",
        run,
    )


def load_restorer(
    path: Path, sampling: SamplingConfig | None = None, device: str = "auto"
) -> Restorer:
    """Open a checkpoint (file or run folder), a package or a Richardson-Lucy model."""
    source = open_model(path, "evaluate", sampling=sampling is not None)
    if source.kind == "richardson-lucy":
        return _richardson_lucy_restorer(source.file)
    if source.kind == "package":
        return _package_restorer(source.file, device)
    return _checkpoint_restorer(source.file, sampling or SamplingConfig(), device)
