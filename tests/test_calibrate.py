"""`calibrate` on a real (tiny) checkpoint: stored, used by predict and export, reported."""

from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

from hazematching.bioimage.reading import load_package
from hazematching.config import SamplingConfig
from hazematching.errors import CalibrationMismatch, HazeMatchingError
from hazematching.export.package import export_package
from hazematching.export.recipe import default_recipe
from hazematching.inference.package import run_package
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler
from hazematching.model.checkpoint import load_checkpoint, save_checkpoint
from hazematching.model.trained import load_trained_model
from hazematching.training.loop import TrainResult
from hazematching.uncertainty.calibrate import calibrate
from tests.helpers import run

SAMPLING = SamplingConfig(samples=3, steps=2, seed=0)


@pytest.fixture(scope="module")
def calibrated(trained: TrainResult, sim_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the tiny checkpoint, calibrated on the validation split."""
    path = tmp_path_factory.mktemp("cal") / "best.pt"
    shutil.copyfile(trained.best, path)
    return calibrate(path, sim_dir, sampling=SAMPLING, bins=8, progress=False)


def test_calibration_is_stored_and_reported(calibrated) -> None:
    stored = load_checkpoint(calibrated.checkpoint).calibration
    assert stored == calibrated.calibration
    assert stored.bins == 8 and "val" in stored.source
    assert (stored.samples, stored.steps) == (SAMPLING.samples, SAMPLING.steps)
    assert stored.error_after <= stored.error_before
    for name in ("calibration.png", "calibration_error.png"):
        assert (calibrated.report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((calibrated.report / "calibration.json").read_text())
    assert len(numbers["bins"]["calibrated"]["rmse"]) == 8
    assert numbers["calibration"]["std_scale"] == stored.std_scale


def test_predict_applies_the_calibration(calibrated, sim_dir: Path) -> None:
    model = load_trained_model(calibrated.checkpoint)
    hazy = tifffile.imread(sorted((sim_dir / "test").glob("*.tif"))[0])[1:2]
    cpu = torch.device("cpu")
    raw = predict_planes(model, build_sampler(model, SAMPLING, cpu, calibrated=False), hazy)
    cal = predict_planes(model, build_sampler(model, SAMPLING, cpu), hazy)
    c, unit = model.calibration, model.normalization.intensity_map(hazy[0]).output_scale
    np.testing.assert_allclose(cal.std, c.std_scale * raw.std + c.std_offset * unit, rtol=1e-4)
    np.testing.assert_array_equal(cal.mmse, raw.mmse)


def test_export_carries_the_calibrated_std(calibrated, sim_dir: Path, tmp_path: Path) -> None:
    # the fitted scale of the tiny model can lie near 1; a scale of 1.5 makes the calibrated std
    # impossible to mistake for the raw one
    checkpoint = load_checkpoint(calibrated.checkpoint)
    checkpoint.calibration = checkpoint.calibration.model_copy(update={"std_scale": 1.5})
    path = tmp_path / "best.pt"
    save_checkpoint(path, checkpoint)
    recipe = default_recipe().model_copy(
        update={"sampling": SamplingConfig(samples=3, steps=2), "test_size": 32}
    )
    result = export_package(path, tmp_path / "model.zip", recipe)
    with zipfile.ZipFile(result.path) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        card = archive.read(rdf["documentation"]).decode()
    stored = rdf["config"]["hazematching"]["calibration"]
    assert stored["std_scale"] == 1.5
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["std_scale"] == 1.5
    assert "calibrated as 1.5 x std" in card and "not calibrated" not in card
    # the package's std channel is the calibrated std of the library, not the raw one
    hazy = tifffile.imread(sorted((sim_dir / "test").glob("*.tif"))[0])[1:2]
    model = load_trained_model(path)
    sampling = SamplingConfig(samples=3, steps=2, seed=0)
    cpu = torch.device("cpu")
    cal = predict_planes(model, build_sampler(model, sampling, cpu), hazy)
    raw = predict_planes(model, build_sampler(model, sampling, cpu, calibrated=False), hazy)
    packaged = run_package(load_package(result.path), hazy, "cpu", lambda: None)
    np.testing.assert_allclose(packaged[0, 1], cal.std[0], rtol=1e-3, atol=1e-3)
    assert not np.allclose(packaged[0, 1], raw.std[0], rtol=1e-2)


def test_bad_calibration_input(calibrated, sim_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(HazeMatchingError, match="at least 2 samples"):
        calibrate(calibrated.checkpoint, sim_dir, sampling=SamplingConfig(samples=1))
    hazy_only = tmp_path / "hazy_only"
    hazy_only.mkdir()
    tifffile.imwrite(hazy_only / "a.tif", np.ones((32, 32), np.float32))
    before = calibrated.checkpoint.read_bytes()
    with pytest.raises(HazeMatchingError, match=r"a\.tif"):
        calibrate(calibrated.checkpoint, hazy_only, sampling=SAMPLING, progress=False)
    with pytest.raises(HazeMatchingError, match="too few"):
        calibrate(calibrated.checkpoint, sim_dir, sampling=SAMPLING, bins=10**6, progress=False)
    assert calibrated.checkpoint.read_bytes() == before  # nothing rewritten on failure


def test_other_sampling_than_the_calibrations_is_flagged(calibrated, sim_dir: Path) -> None:
    model = load_trained_model(calibrated.checkpoint)
    cpu = torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fitted setting: no warning
        build_sampler(model, SAMPLING, cpu)
    other = SAMPLING.model_copy(update={"steps": SAMPLING.steps + 3})
    with pytest.warns(CalibrationMismatch, match="fitted at 3 samples x 2 steps; at 3 x 5"):
        build_sampler(model, other, cpu)
    unknown = model.calibration.model_copy(update={"samples": None, "steps": None})
    assert unknown.mismatch(8, 20) is None  # calibrations stored before the record: unknown
    # the command line says it in one line and still writes the result
    hazy = sorted((sim_dir / "test").glob("*.tif"))[0]
    out = calibrated.checkpoint.parent / "pred"
    args = ("--samples", 3, "--steps", 5, "--channel", 1, "--no-progress")
    done = run("predict", calibrated.checkpoint, hazy, "--out", out, *args)
    assert done.returncode == 0, done.stderr
    warning_lines = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning_lines) == 1 and "calibrate again" in warning_lines[0]
    assert (out / hazy.name).is_file()
