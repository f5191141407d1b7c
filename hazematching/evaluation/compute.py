"""`hazematching evaluate`: distortion, realism and calibration of a method on held-out pairs.

Every method (HazeMatching, InDI, U-Net, Richardson-Lucy, or an exported package) is run on
the test pairs of DATA_DIR (`test/` if it exists) and measured the same way:

- distortion of the MMSE: range-invariant PSNR, MS-SSIM after the same affine fit, MicroMS3IM,
  and the Fourier ring correlation resolution at the 1/7 and 0.5 thresholds;
- single samples: range-invariant PSNR, and realism on 64 x 64 patches of percentile-normalised
  images: GMSD, FSIM, the distance of radially averaged log power spectra and, given local weight
  files, LPIPS and FID (pooled over all test patches); over the whole test set, the sliced
  Wasserstein distance of Laplacian-pyramid neighbourhoods (`swd`), a weight-free FID;
- calibration on the test pixels (methods with a std): expected normalised calibration error of
  the raw std and of the std calibrated with the stored calibration, and their plot.

Each run writes `methods/<name>.json` and `.md` and per-image figures into the report folder
and then rebuilds, from every method evaluated into that folder, `summary.md`, `summary.json`
and the perception-distortion plots. Everything is computed before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .._version import __version__
from ..config import SamplingConfig
from ..data.dataset import load_pairs, require_min_size, split_folder
from ..errors import HazeMatchingError
from ..fileio import check_output_folder, write_json, write_text
from ..metrics.distortion import range_invariant_psnr
from ..metrics.perceptual import InceptionFeatures, Lpips, frechet_distance
from ..metrics.resolution import fourier_ring_correlation
from ..metrics.similarity import (
    SSIM_WINDOW,
    fsim,
    gmsd,
    micro_ms3im,
    patch_mean,
    patches,
    percentile_normalize,
    range_invariant_ms_ssim,
    spectral_distance,
)
from ..metrics.swd import SwdSettings, swd
from ..model.calibration import bin_by_std, calibration_error
from ..plots import image_row
from ..uncertainty.plots import calibration_plot
from .report import METHODS_FOLDER, SUMMARY, method_markdown, write_summary
from .restorers import Restoration, Restorer, load_restorer


@dataclass(frozen=True)
class PerceptualWeights:
    """Local weight files for LPIPS (AlexNet + linear layers) and FID (Inception-v3)."""

    alexnet: Path | None = None
    lpips: Path | None = None
    inception: Path | None = None

    def skipped(self) -> list[str]:
        """One line per metric that will not be computed, saying what it needs."""
        lines = []
        if self.alexnet is None or self.lpips is None:
            lines.append(
                "LPIPS not computed: pass --alexnet-weights (torchvision alexnet-owt-7be5be79.pth)"
                " and --lpips-weights (lpips v0.1 alex.pth)"
            )
        if self.inception is None:
            lines.append(
                "FID not computed: pass --inception-weights (torchvision "
                "inception_v3_google-0cc3c7bd.pth)"
            )
        return lines


@dataclass(frozen=True)
class EvaluationResult:
    """Where the method's numbers went, and its overall numbers."""

    name: str
    method_json: Path
    summary: Path
    overall: dict[str, Any]


def _image_names(sources: list[Path]) -> list[str]:
    names, seen = [], {}
    for source in sources:
        index = seen.get(source, 0)
        seen[source] = index + 1
        names.append(source.stem if sources.count(source) == 1 else f"{source.stem}_z{index}")
    return names


def _realism(target: np.ndarray, image: np.ndarray, lpips: Lpips | None) -> dict[str, float]:
    """Patch-averaged realism distances of one image to its target (percentile-normalised)."""
    t, p = percentile_normalize(target), percentile_normalize(image)
    values = {
        "gmsd": patch_mean(gmsd, t, p),
        "fsim": patch_mean(fsim, t, p),
        "spectral_distance": patch_mean(spectral_distance, t, p),
    }
    if lpips is not None:
        values["lpips"] = float(np.mean(lpips.distances(patches(t), patches(p))))
    return values


def _mean(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([d[key] for d in dicts])) for key in dicts[0]}


def _distortion(target: np.ndarray, image: np.ndarray) -> dict[str, float]:
    """Distortion metrics of one image against its target."""
    frc = fourier_ring_correlation(image, target)
    return {
        "ri_psnr": range_invariant_psnr(target, image),
        "ms_ssim": range_invariant_ms_ssim(target, image),
        "micro_ms3im": micro_ms3im(target, image),
        "frc_resolution_px_1_7": frc.resolution(1 / 7),
        "frc_resolution_px_0_5": frc.resolution(0.5),
    }


def _image_metrics(
    hazy: np.ndarray, target: np.ndarray, result: Restoration, lpips: Lpips | None
) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "input": {**_distortion(target, hazy), **_realism(target, hazy, lpips)},
        "mmse": {**_distortion(target, result.mmse), **_realism(target, result.mmse, lpips)},
    }
    if result.samples is not None:
        per_sample = [
            {"ri_psnr": range_invariant_psnr(target, s), **_realism(target, s, lpips)}
            for s in result.samples
        ]
        metrics["sample"] = _mean(per_sample)
    return metrics


def _spread(
    calibrated: list[np.ndarray], errors: list[np.ndarray], ranges: list[float]
) -> dict[str, float]:
    """How the calibrated std compares with the error it is meant to predict.

    `std_to_error` is the root mean calibrated variance over the RMS error of all test pixels
    (the ratio ENCE compares bin by bin: 1 when the std is right on average, below 1 when it is
    overconfident). `std_rel` and `error_rel` are the per-image root mean variance and RMS error
    as fractions of the target's 0.1-99.9 percentile range, averaged over images: comparable
    across data sets of different brightness.
    """

    def rms(values: np.ndarray) -> float:
        return float(np.sqrt(np.mean(values.astype(np.float64) ** 2)))

    std, error = np.concatenate(calibrated), np.concatenate(errors)
    pairs = list(zip(calibrated, errors, ranges, strict=True))
    return {
        "std_to_error": rms(std) / rms(error),
        "std_rel": float(np.mean([rms(s) / r for s, _, r in pairs])),
        "error_rel": float(np.mean([rms(e) / r for _, e, r in pairs])),
    }


def _calibration_check(
    restorer: Restorer,
    stds: list[np.ndarray],
    errors: list[np.ndarray],
    units: list[float],
    ranges: list[float],
    bins: int,
) -> tuple[dict[str, Any], Any, Any] | None:
    """Calibration error on the test pixels, raw and calibrated (in network units: each image's
    std and error divided by its `Restoration.std_unit`), and the calibrated std against the
    error (`_spread`, in target units)."""
    if not stds:
        return None
    std = np.concatenate([s / u for s, u in zip(stds, units, strict=True)])
    error = np.concatenate([e / u for e, u in zip(errors, units, strict=True)])
    if restorer.std_is_calibrated:
        after = bin_by_std(std, error, bins)
        numbers: dict[str, Any] = {"calibrated_error": calibration_error(after), "raw_error": None}
        return {**numbers, **_spread(stds, errors, ranges)}, None, after
    before = bin_by_std(std, error, bins)
    numbers = {"raw_error": calibration_error(before), "calibrated_error": None}
    after = None
    if restorer.calibration is not None:
        c = restorer.calibration
        after = bin_by_std(c.std_scale * std + c.std_offset, error, bins)
        numbers["calibrated_error"] = calibration_error(after)
        numbers["std_scale"], numbers["std_offset"] = c.std_scale, c.std_offset
        calibrated = [
            (c.std_scale * s / u + c.std_offset) * u for s, u in zip(stds, units, strict=True)
        ]
        numbers.update(_spread(calibrated, errors, ranges))
    return numbers, before, after


def evaluate(
    model_path: Path,
    data_dir: Path,
    out_dir: Path,
    sampling: SamplingConfig | None = None,
    *,
    name: str | None = None,
    weights: PerceptualWeights = PerceptualWeights(),
    bins: int = 20,
    figures: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate one method on the test pairs of `data_dir`; add it to the report in `out_dir`.

    `figures` limits the per-image figures to the first N images (default: all).
    """
    restorer = load_restorer(model_path, sampling, device)
    folder = split_folder(data_dir, "test")
    pairs = load_pairs(folder)
    require_min_size(pairs.inputs, pairs.sources, SSIM_WINDOW, "the MS-SSIM window")
    if (weights.alexnet is None) != (weights.lpips is None):
        raise HazeMatchingError("LPIPS needs both --alexnet-weights and --lpips-weights")
    lpips = Lpips(weights.alexnet, weights.lpips) if weights.alexnet and weights.lpips else None
    inception = InceptionFeatures(weights.inception) if weights.inception else None
    out_dir = check_output_folder(out_dir)
    _check_report(out_dir, folder)
    name = name or restorer.name
    if not name.replace("-", "").replace("_", "").isalnum():
        raise HazeMatchingError(f"method name {name!r} may only hold letters, digits, - and _")

    names = _image_names(pairs.sources)
    images, panels_per_image, stds, errors, units, ranges = [], [], [], [], [], []
    fid_sample, fid_target = [], []
    normalised: dict[str, list[np.ndarray]] = {"target": [], "input": [], "mmse": [], "sample": []}
    items = list(zip(names, pairs.inputs, pairs.targets, strict=True))
    for image_name, hazy, target in tqdm(items, desc=f"evaluate {name}", disable=not progress):
        result = restorer.run(hazy)
        images.append({"image": image_name, **_image_metrics(hazy, target, result, lpips)})
        sample = result.samples[0] if result.samples is not None else None
        panels_per_image.append(
            (
                image_name,
                [
                    ("input", hazy),
                    ("target", target),
                    ("MMSE", result.mmse),
                    ("one sample", sample),
                    ("std", result.std),
                ],
            )
        )
        if result.std is not None:
            stds.append(result.std.ravel())
            errors.append((result.mmse - target).ravel())
            units.append(result.std_unit)
            low, high = np.percentile(target, [0.1, 99.9])
            ranges.append(float(high - low) + 1e-12)
        normalised["target"].append(percentile_normalize(target))
        normalised["input"].append(percentile_normalize(hazy))
        normalised["mmse"].append(percentile_normalize(result.mmse))
        if sample is not None:
            normalised["sample"].append(percentile_normalize(sample))
        if inception is not None and sample is not None:
            fid_sample += patches(normalised["sample"][-1])
            fid_target += patches(normalised["target"][-1])

    overall: dict[str, Any] = {
        "input": _mean([m["input"] for m in images]),
        "mmse": _mean([m["mmse"] for m in images]),
    }
    if all("sample" in m for m in images):
        overall["sample"] = _mean([m["sample"] for m in images])
    _add_swd(overall, normalised)
    if inception is not None and fid_sample:
        overall["sample"]["fid"] = frechet_distance(
            inception.features(fid_sample), inception.features(fid_target)
        )
        overall["fid_patches"] = len(fid_sample)
    calibration = _calibration_check(restorer, stds, errors, units, ranges, bins)
    if calibration is not None:
        overall["calibration"] = calibration[0]

    record = {
        "hazematching_version": __version__,
        "name": name,
        "model": str(model_path),
        "description": restorer.description,
        "data": str(folder.resolve()),
        "images": len(images),
        "sampling": sampling.model_dump(mode="json") if sampling else None,
        "skipped": weights.skipped(),
        "overall": overall,
        "per_image": images,
    }
    methods = out_dir / METHODS_FOLDER
    figure_dir = out_dir / "figures" / name
    figure_dir.mkdir(parents=True, exist_ok=True)
    methods.mkdir(parents=True, exist_ok=True)
    for image_name, panels in panels_per_image[:figures]:
        image_row(figure_dir / f"{image_name}.png", panels)
    if calibration is not None and calibration[1] is not None and calibration[2] is not None:
        calibration_plot(
            out_dir / "figures" / f"calibration_{name}.png", calibration[1], calibration[2]
        )
    write_json(methods / f"{name}.json", record)
    write_text(methods / f"{name}.md", method_markdown(record))
    summary = write_summary(out_dir)
    return EvaluationResult(name, methods / f"{name}.json", summary, overall)


def _add_swd(overall: dict[str, Any], normalised: dict[str, list[np.ndarray]]) -> None:
    """Set-level SWD to the targets of the inputs, the MMSEs and the first samples."""
    settings = SwdSettings()
    overall["swd_settings"] = asdict(settings)
    for kind in ("input", "mmse", "sample"):
        if kind in overall:  # "sample" only when every image had one
            bands = swd(normalised["target"], normalised[kind], settings)
            overall[kind]["swd"] = bands.pop("mean")
            overall[kind]["swd_bands"] = bands


def _check_report(out_dir: Path, folder: Path) -> None:
    """A report folder may only collect methods evaluated on the same data."""
    summary = out_dir / SUMMARY
    if not summary.is_file():
        return
    try:
        data = json.loads(summary.read_text())["data"]
    except (OSError, ValueError, KeyError) as error:
        raise HazeMatchingError("unreadable report summary; use a new folder", summary) from error
    if data != str(folder.resolve()):
        raise HazeMatchingError(
            f"holds results on other data ({data}); use a new report folder", out_dir
        )
