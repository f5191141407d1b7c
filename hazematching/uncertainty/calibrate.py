"""`hazematching calibrate`: fit the std calibration of a checkpoint on paired validation data.

The checkpoint's uncalibrated sampler predicts every validation pair; the predicted std and the
actual error of the MMSE (both in z-scores of the target, the units the sampler works in) are
binned and an affine map std' = scale * std + offset is fitted (see `calibration.py`). It is
stored in the checkpoint, so `predict` and a later `export` give the calibrated std, and the
calibration plot, the per-bin error figure and the numbers are written to a report folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import SamplingConfig
from ..data.dataset import load_pairs, split_folder
from ..errors import HazeMatchingError
from ..fileio import check_output_folder, output_folder, write_json
from ..inference.loader import open_model
from ..inference.planes import predict_planes
from ..inference.sampling import build_sampler, method_sampling
from ..model.calibration import Calibration, calibrate_arrays
from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.trained import trained_model_from
from ..runtime import resolve_device
from .plots import calibration_error_plot, calibration_plot


@dataclass(frozen=True)
class CalibrationResult:
    """The fitted calibration, the checkpoint that now holds it, and the report files."""

    calibration: Calibration
    checkpoint: Path
    report: Path


def calibrate(
    model_path: Path,
    data_dir: Path,
    out_dir: Path | None = None,
    sampling: SamplingConfig | None = None,
    *,
    bins: int = 20,
    device: str = "auto",
    progress: bool = True,
) -> CalibrationResult:
    """Fit and store the std calibration of a checkpoint; write plots and numbers to `out_dir`.

    `data_dir` holds pairs (its `val/` split if there is one); they should not be training
    data, or the errors are too small. `out_dir` defaults to `calibration/` next to the
    checkpoint. The checkpoint is rewritten atomically with the calibration added.
    """
    path = open_model(model_path, "calibrate").file
    sampling = sampling or SamplingConfig()
    if sampling.samples < 2:
        raise HazeMatchingError("calibration needs at least 2 samples per image for a std")
    report = check_output_folder(
        Path(out_dir) if out_dir is not None else path.parent / "calibration"
    )
    checkpoint = load_checkpoint(path)
    sampling = method_sampling(checkpoint.config, sampling, checkpoint.calibration)
    folder = split_folder(data_dir, "val")
    pairs = load_pairs(folder)
    model = trained_model_from(checkpoint, path)
    sampler = build_sampler(model, sampling, resolve_device(device), calibrated=False)
    stds, errors = [], []
    with torch.no_grad():
        for hazy, target in tqdm(
            list(zip(pairs.inputs, pairs.targets, strict=True)),
            desc="calibrate",
            unit="image",
            disable=not progress,
        ):
            result = predict_planes(model, sampler, hazy[None])
            unit = checkpoint.normalization.intensity_map(hazy).output_scale
            stds.append(result.std[0].ravel() / unit)
            errors.append((result.mmse[0] - target).ravel() / unit)
    source = (
        f"{len(pairs)} images of {folder} ({sampling.samples} samples, {sampling.steps} steps, "
        f"seed {sampling.seed})"
    )
    try:
        calibration, before, after = calibrate_arrays(
            np.concatenate(stds), np.concatenate(errors), bins, source
        )
    except ValueError as error:
        raise HazeMatchingError(str(error), folder) from error
    calibration = calibration.model_copy(
        update={"samples": sampling.samples, "steps": sampling.steps}
    )

    output_folder(report)
    calibration_plot(report / "calibration.png", before, after)
    calibration_error_plot(report / "calibration_error.png", before, after)
    write_json(
        report / "calibration.json",
        {
            "checkpoint": str(path),
            "calibration": calibration.model_dump(mode="json"),
            "sampling": sampling.model_dump(mode="json"),
            "units": "z-scores of the target (divide by the target std of the training data)",
            "bins": {
                name: {
                    "rmv": bins_.rmv.tolist(),
                    "rmse": bins_.rmse.tolist(),
                    "rmse_stderr": bins_.rmse_stderr.tolist(),
                    "pixels": bins_.counts.tolist(),
                }
                for name, bins_ in (("uncalibrated", before), ("calibrated", after))
            },
        },
    )
    checkpoint.calibration = calibration
    save_checkpoint(path, checkpoint)
    return CalibrationResult(calibration, path, report)
