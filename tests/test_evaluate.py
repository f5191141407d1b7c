"""`evaluate`: numbers recomputed independently, a shared report, clear errors on bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torchvision.models import alexnet

from hazematching.config import SamplingConfig
from hazematching.data.dataset import load_pairs
from hazematching.data.simulate import PSF_FILE
from hazematching.errors import HazeMatchingError
from hazematching.evaluation.compute import EvaluationResult, PerceptualWeights, evaluate
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler
from hazematching.metrics.distortion import range_invariant_psnr
from hazematching.metrics.perceptual import LPIPS_LAYERS, Lpips
from hazematching.metrics.resolution import fourier_ring_correlation
from hazematching.metrics.similarity import percentile_normalize
from hazematching.metrics.swd import swd
from hazematching.model.richardson_lucy import deconvolve
from hazematching.model.trained import load_trained_model
from hazematching.training.richardson_lucy import fit_richardson_lucy
from tests.helpers import EVAL_SAMPLING as SAMPLING
from tests.helpers import run


@pytest.fixture(scope="module")
def rl_model(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rl")
    fit_richardson_lucy(sim_dir / PSF_FILE, sim_dir, out, max_iterations=5, progress=False)
    return out


@pytest.fixture(scope="module")
def report(
    calibrated_checkpoint: Path, rl_model: Path, sim_dir: Path, tmp_path_factory
) -> tuple[Path, EvaluationResult, EvaluationResult]:
    out = tmp_path_factory.mktemp("report") / "report"
    flow = evaluate(calibrated_checkpoint, sim_dir, out, SAMPLING, bins=4, progress=False)
    rl = evaluate(rl_model, sim_dir, out, progress=False)
    return out, flow, rl


def test_numbers_match_an_independent_recomputation(report, rl_model: Path, sim_dir: Path) -> None:
    _, _, rl = report
    record = json.loads(rl.method_json.read_text())
    pairs = load_pairs(sim_dir / "test")
    assert record["images"] == len(pairs) == len(record["per_image"])
    from hazematching.model.richardson_lucy import load_richardson_lucy

    module = load_richardson_lucy(rl_model).module()
    for image, hazy, target in zip(record["per_image"], pairs.inputs, pairs.targets, strict=True):
        restored = deconvolve(module, hazy)
        assert image["mmse"]["ri_psnr"] == pytest.approx(range_invariant_psnr(target, restored))
        assert image["input"]["ri_psnr"] == pytest.approx(range_invariant_psnr(target, hazy))
        frc = fourier_ring_correlation(restored, target)
        assert image["mmse"]["frc_resolution_px_1_7"] == pytest.approx(frc.resolution(1 / 7))
        # a point predictor's single sample is its output
        assert image["sample"]["ri_psnr"] == pytest.approx(image["mmse"]["ri_psnr"])
    mean = np.mean([m["mmse"]["ms_ssim"] for m in record["per_image"]])
    assert record["overall"]["mmse"]["ms_ssim"] == pytest.approx(mean)
    # SWD: one number over the whole test set, from the percentile-normalised images
    normalised = [percentile_normalize(t) for t in pairs.targets]
    restored = [percentile_normalize(deconvolve(module, h)) for h in pairs.inputs]
    bands = swd(normalised, restored)
    assert record["overall"]["mmse"]["swd"] == pytest.approx(bands.pop("mean"))
    assert record["overall"]["mmse"]["swd_bands"] == pytest.approx(bands)
    assert record["overall"]["sample"]["swd"] == record["overall"]["mmse"]["swd"]
    assert record["overall"]["input"]["swd"] > 0
    assert "calibration" not in record["overall"]


def test_report_collects_every_method(report) -> None:
    out, flow, rl = report
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {flow.name, rl.name} == {"hazematching", "richardson-lucy"}
    text = (out / "summary.md").read_text()
    assert "| hazematching |" in text and "| richardson-lucy |" in text
    assert "LPIPS not computed" in text and "FID not computed" in text
    for metric in ("gmsd", "spectral_distance", "swd"):
        assert (out / f"perception_distortion_{metric}.png").stat().st_size > 0
    names = [m["image"] for m in json.loads(flow.method_json.read_text())["per_image"]]
    for name in names:
        assert (out / "figures" / "hazematching" / f"{name}.png").is_file()
    assert (out / "figures" / "calibration_hazematching.png").is_file()


def _ence(std: np.ndarray, error: np.ndarray, bins: int) -> float:
    """Expected normalised calibration error, written out here apart from the library's."""
    order = np.argsort(std, kind="stable")
    total, weighted = 0, 0.0
    for group in np.array_split(order, bins):
        rmv = np.sqrt(np.mean(std[group] ** 2))
        rmse = np.sqrt(np.mean(error[group] ** 2))
        weighted += len(group) * abs(rmv - rmse) / rmse
        total += len(group)
    return weighted / total


def test_sample_metrics_and_calibration_check(report) -> None:
    _, flow, _ = report
    overall = flow.overall
    assert set(overall["sample"]) == {
        "ri_psnr",
        "gmsd",
        "fsim",
        "spectral_distance",
        "swd",
        "swd_bands",
    }
    # the sample metrics are measured on samples, not on their mean (which of the two scores
    # higher is not settled for a network trained for a few steps, whose samples barely differ)
    assert overall["sample"]["ri_psnr"] != overall["mmse"]["ri_psnr"]
    assert overall["sample"]["spectral_distance"] != overall["mmse"]["spectral_distance"]


def test_calibration_errors_match_an_independent_recomputation(
    report, calibrated_checkpoint: Path, sim_dir: Path
) -> None:
    """The raw and calibrated ENCE of the report, from the same samples binned here."""
    _, flow, _ = report
    numbers = flow.overall["calibration"]
    model = load_trained_model(calibrated_checkpoint)
    stored = model.calibration
    assert (numbers["std_scale"], numbers["std_offset"]) == (stored.std_scale, stored.std_offset)
    sampler = build_sampler(model, SAMPLING, torch.device("cpu"), calibrated=False)
    stds, errors = [], []
    pairs = load_pairs(sim_dir / "test")
    for hazy, target in zip(pairs.inputs, pairs.targets, strict=True):
        unit = model.normalization.intensity_map(hazy).output_scale  # this image's network unit
        result = predict_planes(model, sampler, hazy[None])
        stds.append(result.std[0].ravel() / unit)
        errors.append((result.mmse[0] - target).ravel() / unit)
    std, error = np.concatenate(stds).astype(np.float64), np.concatenate(errors)
    error = error.astype(np.float64)
    assert numbers["raw_error"] == pytest.approx(_ence(std, error, 4), rel=1e-6)
    calibrated = stored.std_scale * std + stored.std_offset
    assert numbers["calibrated_error"] == pytest.approx(_ence(calibrated, error, 4), rel=1e-6)
    assert numbers["calibrated_error"] != pytest.approx(numbers["raw_error"])


def test_lpips_with_local_weights(report, sim_dir: Path, rl_model: Path, tmp_path: Path) -> None:
    """Random weights in the published file layouts: the metric runs and behaves as a distance."""
    torch.manual_seed(0)
    torch.save(alexnet(weights=None).state_dict(), tmp_path / "alexnet.pth")
    linear = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPS_LAYERS)}
    torch.save(linear, tmp_path / "alex.pth")
    lpips = Lpips(tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 64, 64)), rng.random((2, 64, 64))
    assert lpips.distances([a[0]], [a[0]])[0] == pytest.approx(0.0, abs=1e-7)
    assert (lpips.distances(list(a), list(b)) > 0).all()
    weights = PerceptualWeights(tmp_path / "alexnet.pth", tmp_path / "alex.pth")
    result = evaluate(rl_model, sim_dir, tmp_path / "r", weights=weights, progress=False)
    assert result.overall["sample"]["lpips"] > 0
    assert "LPIPS not computed" not in (tmp_path / "r" / "summary.md").read_text()


def test_bad_input_is_refused_and_writes_nothing(
    rl_model: Path, sim_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    # a data folder without targets: single-channel images
    (tmp_path / "hazy").mkdir()
    tifffile.imwrite(tmp_path / "hazy" / "a.tif", np.ones((32, 32), np.float32))
    with pytest.raises(HazeMatchingError, match=r"a\.tif"):
        evaluate(rl_model, tmp_path / "hazy", out, progress=False)
    # inputs and targets of different shapes
    for folder, shape in (("input", (32, 32)), ("target", (32, 40))):
        (tmp_path / "pairs" / folder).mkdir(parents=True)
        tifffile.imwrite(tmp_path / "pairs" / folder / "a.tif", np.ones(shape, np.float32))
    with pytest.raises(HazeMatchingError, match="does not match target shape"):
        evaluate(rl_model, tmp_path / "pairs", out, progress=False)
    # images too small for the metrics
    (tmp_path / "tiny").mkdir()
    tifffile.imwrite(tmp_path / "tiny" / "t.tif", np.ones((2, 8, 8), np.float32))
    with pytest.raises(HazeMatchingError, match=r"t\.tif.*smaller than the MS-SSIM window 11"):
        evaluate(rl_model, tmp_path / "tiny", out, progress=False)
    # missing LPIPS weight files, or only half of them
    missing = PerceptualWeights(tmp_path / "nope.pth", tmp_path / "nope2.pth")
    with pytest.raises(HazeMatchingError, match="AlexNet weights not found"):
        evaluate(rl_model, sim_dir, out, weights=missing, progress=False)
    with pytest.raises(HazeMatchingError, match="needs both"):
        evaluate(rl_model, sim_dir, out, weights=PerceptualWeights(lpips=tmp_path / "x"))
    assert not out.exists()


def test_report_refuses_other_data(report, rl_model: Path, tmp_path: Path) -> None:
    out = report[0]
    other = tmp_path / "other"
    other.mkdir()
    tifffile.imwrite(other / "p.tif", np.ones((2, 32, 32), np.float32))
    before = (out / "summary.json").read_text()
    with pytest.raises(HazeMatchingError, match="other data"):
        evaluate(rl_model, other, out, progress=False)
    assert (out / "summary.json").read_text() == before


def test_cli_bad_input_one_line(rl_model: Path, tmp_path: Path) -> None:
    done = run("evaluate", rl_model, tmp_path / "missing", "--out", tmp_path / "r", "--no-progress")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "missing" in errors[0]
    assert not (tmp_path / "r").exists()


def test_cli_evaluates_and_reports(rl_model: Path, sim_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    done = run("evaluate", rl_model, sim_dir, "--out", out, "--figures", 1, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert len(list((sim_dir / "test").glob("*.tif"))) > 1
    assert len(list((out / "figures" / "richardson-lucy").glob("*.png"))) == 1
    assert "richardson-lucy: MMSE range-invariant PSNR" in done.stdout
    assert "LPIPS not computed" in done.stderr
    assert (tmp_path / "r" / "summary.md").stat().st_size > 0


def _card(package: Path) -> str:
    with zipfile.ZipFile(package) as archive:
        return archive.read("README.md").decode()


def test_package_is_evaluated_like_its_checkpoint(
    report, calibrated_checkpoint: Path, sim_dir: Path, tmp_path: Path
) -> None:
    from hazematching.export.package import export_package
    from hazematching.export.recipe import default_recipe

    recipe = default_recipe().model_copy(
        update={
            "sampling": SamplingConfig(samples=3, steps=2, keep_samples=True),
            "test_size": 32,
            "evaluation": report[0],
        }
    )
    package = export_package(calibrated_checkpoint, tmp_path / "m.zip", recipe).path
    card = _card(package)  # the report's table under Validation, naming this model
    assert "this package is `hazematching`" in card.split("## Validation")[1]
    from_package = evaluate(package, sim_dir, tmp_path / "a", bins=4, progress=False)
    from_checkpoint = evaluate(
        calibrated_checkpoint, sim_dir, tmp_path / "b", SAMPLING, bins=4, progress=False
    )
    a, b = from_package.overall, from_checkpoint.overall
    assert a["mmse"]["ri_psnr"] == pytest.approx(b["mmse"]["ri_psnr"], abs=1e-3)
    assert a["sample"]["ri_psnr"] == pytest.approx(b["sample"]["ri_psnr"], abs=1e-3)
    # the package's std is already calibrated: its error equals the checkpoint's calibrated one
    assert a["calibration"]["raw_error"] is None
    assert a["calibration"]["calibrated_error"] == pytest.approx(
        b["calibration"]["calibrated_error"], abs=1e-3
    )


def test_model_card_shows_this_models_evaluation(
    report, calibrated_checkpoint: Path, rl_model: Path, tmp_path: Path
) -> None:
    from hazematching.export.card import evaluation_markdown
    from hazematching.model.checkpoint import load_checkpoint

    out, flow, _ = report
    calibration = load_checkpoint(calibrated_checkpoint).calibration
    # the run folder names the same checkpoint as the file evaluate was given
    text = evaluation_markdown(out, calibrated_checkpoint.parent, calibration)
    assert "this package is `hazematching`" in text
    assert f"| hazematching | {flow.overall['mmse']['ri_psnr']:.2f} |" in text
    assert "| richardson-lucy |" in text and "| hazy input |" in text
    assert "this package is `richardson-lucy`" in evaluation_markdown(out, rl_model, None)
    with pytest.raises(HazeMatchingError, match="holds no evaluation"):
        evaluation_markdown(out, tmp_path / "other.pt", calibration)
    stale = calibration.model_copy(update={"std_scale": calibration.std_scale * 2})
    with pytest.raises(HazeMatchingError, match="another calibration"):
        evaluation_markdown(out, calibrated_checkpoint, stale)


def test_fid_with_local_inception_weights(rl_model: Path, sim_dir: Path, tmp_path: Path) -> None:
    """Randomly initialised torchvision Inception-v3 weights in the published file layout."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(net.state_dict(), tmp_path / "inception.pth")
    weights = PerceptualWeights(inception=tmp_path / "inception.pth")
    result = evaluate(rl_model, sim_dir, tmp_path / "r", weights=weights, progress=False)
    # Richardson-Lucy's sample is its output, one 64 px patch per test image
    pairs = load_pairs(sim_dir / "test")
    assert result.overall["fid_patches"] == len(pairs)
    assert result.overall["sample"]["fid"] > 0  # restored patches are not the targets
    torch.save({"not": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(HazeMatchingError, match="not torchvision Inception-v3 weights"):
        evaluate(
            rl_model,
            sim_dir,
            tmp_path / "r2",
            weights=PerceptualWeights(inception=tmp_path / "wrong.pth"),
            progress=False,
        )
    assert not (tmp_path / "r2").exists()
