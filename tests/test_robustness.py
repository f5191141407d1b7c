"""`hazematching robustness`: held-out test sets per condition, a table whose numbers are
recomputed here from the model's own predictions, reuse of test sets, clear errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from hazematching.config import (
    CameraRecording,
    RandomizationConfig,
    RobustnessCondition,
    RobustnessPlan,
    SimulationConfig,
)
from hazematching.data.dataset import load_pairs
from hazematching.data.simulate import simulate
from hazematching.errors import HazeMatchingError
from hazematching.evaluation.robustness import (
    ModelEntry,
    condition_config,
    record_pairs,
    robustness,
)
from hazematching.export.card import ranges_text, robustness_markdown
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler
from hazematching.metrics.distortion import range_invariant_psnr
from hazematching.model.checkpoint import load_checkpoint
from hazematching.model.trained import load_trained_model
from tests.helpers import EVAL_SAMPLING, invoke

PLAN = RobustnessPlan(
    pairs=3,
    size=48,
    seed=11,
    conditions={
        "in-range": RobustnessCondition(
            description="narrow training-like ranges",
            reference=True,
            ranges=RandomizationConfig(numerical_aperture=(1.0, 1.2), psf_models=("scalar",)),
        ),
        "na-low": RobustnessCondition(
            description="NA 0.6",
            out_of_range="numerical aperture",
            ranges=RandomizationConfig(numerical_aperture=(0.6, 0.6), psf_models=("scalar",)),
        ),
        "fixed": RobustnessCondition(description="fixed configuration", randomize=False),
    },
)


@pytest.fixture(scope="module")
def table(calibrated_checkpoint: Path, trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("robust") / "out"
    models = [ModelEntry("calibrated", calibrated_checkpoint), ModelEntry("raw", trained.best)]
    return robustness(models, PLAN, out, EVAL_SAMPLING, figures=1, progress=False)


def test_each_condition_is_a_test_set_simulated_as_planned(table: Path) -> None:
    out = table.parent
    for name in PLAN.conditions:
        manifest = json.loads((out / "data" / name / "simulation.json").read_text())
        assert SimulationConfig.model_validate(manifest["config"]) == condition_config(PLAN, name)
        assert {r["split"] for r in manifest["pairs"]} == {"test"}
        assert len(list((out / "data" / name / "test").glob("*.tif"))) == 3
    low = json.loads((out / "data" / "na-low" / "simulation.json").read_text())
    assert {r["condition"]["numerical_aperture"] for r in low["pairs"]} == {0.6}
    fixed = json.loads((out / "data" / "fixed" / "simulation.json").read_text())
    assert fixed["config"]["randomize"] is None and "condition" not in fixed["pairs"][0]


def test_table_numbers_are_those_of_the_models_own_predictions(
    table: Path, calibrated_checkpoint: Path
) -> None:
    """Gain, share and std / error recomputed from predictions made here with the same sampling."""
    rows = json.loads(table.read_text())["rows"]
    assert [(r["model"], r["condition"]) for r in rows] == [
        (model, condition) for model in ("calibrated", "raw") for condition in PLAN.conditions
    ]
    model = load_trained_model(calibrated_checkpoint)
    sampler = build_sampler(model, EVAL_SAMPLING, torch.device("cpu"), calibrated=True)
    gains = {}
    for row in rows[:3]:
        pairs = load_pairs(table.parent / "data" / row["condition"] / "test")
        gain, stds, errors = [], [], []
        for hazy, target in zip(pairs.inputs, pairs.targets, strict=True):
            result = predict_planes(model, sampler, hazy[None])
            gain.append(
                range_invariant_psnr(target, result.mmse[0]) - range_invariant_psnr(target, hazy)
            )
            stds.append(result.std[0].ravel())
            errors.append((result.mmse[0] - target).ravel())
        gains[row["condition"]] = float(np.mean(gain))
        assert row["gain"] == pytest.approx(gains[row["condition"]], abs=1e-4)
        std = np.concatenate(stds).astype(np.float64)
        error = np.concatenate(errors).astype(np.float64)
        assert row["std_to_error"] == pytest.approx(
            np.sqrt(np.mean(std**2) / np.mean(error**2)), rel=1e-3
        )
        assert row["ence_calibrated"] is not None
    for row in rows[:3]:
        expected = gains[row["condition"]] / gains["in-range"]
        assert row["share_of_reference_gain"] == pytest.approx(expected, rel=1e-3)
    # the uncalibrated model has no calibrated std to compare
    assert all(r["std_to_error"] is None and r["ence_calibrated"] is None for r in rows[3:])
    text = (table.parent / "robustness.md").read_text()
    assert "| calibrated | na-low | numerical aperture |" in text
    assert "(in range)" in text and "`fixed`: fixed configuration" in text


def test_test_sets_are_reused_and_a_changed_plan_is_refused(
    table: Path, calibrated_checkpoint: Path
) -> None:
    out = table.parent
    image = sorted((out / "data" / "na-low" / "test").glob("*.tif"))[0]
    before = (image.stat().st_mtime_ns, tifffile.imread(image))
    robustness(
        [ModelEntry("again", calibrated_checkpoint)], PLAN, out, EVAL_SAMPLING, progress=False
    )
    assert image.stat().st_mtime_ns == before[0]
    rows = json.loads(table.read_text())["rows"]
    assert {r["model"] for r in rows} == {"again"}
    changed = PLAN.model_copy(update={"seed": 12})
    with pytest.raises(HazeMatchingError, match="holds another simulation than condition"):
        robustness([ModelEntry("x", calibrated_checkpoint)], changed, out, progress=False)


def test_plans_need_one_reference_and_distinct_model_names(
    calibrated_checkpoint: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('[conditions.a]\ndescription = "a"\n[conditions.b]\ndescription = "b"\n')
    done = invoke(
        "robustness", calibrated_checkpoint, "--conditions", plan, "--out", tmp_path / "o"
    )
    assert done.exit_code != 0
    message = done.output.strip()
    assert "\n" not in message and str(plan) in message and "reference" in message
    plan.write_text(
        '[conditions.a]\ndescription = "a"\nreference = true\n[conditions.a.simulation]\nseed = 4\n'
    )
    done = invoke(
        "robustness", calibrated_checkpoint, "--conditions", plan, "--out", tmp_path / "o"
    )
    assert done.exit_code != 0 and "set by the plan" in done.output
    with pytest.raises(HazeMatchingError, match="model names must differ"):
        robustness(
            [ModelEntry("m", calibrated_checkpoint)] * 2, PLAN, tmp_path / "o2", progress=False
        )
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()


def test_model_card_shows_this_models_rows_and_refuses_another_models_table(
    table: Path, calibrated_checkpoint: Path, trained
) -> None:
    # the module's tables were last rewritten by the reuse test; make one for these two models
    # on the module's test sets (copied: a plan's test sets are simulated once per folder)
    out = table.parent.parent / "card"
    shutil.copytree(table.parent / "data", out / "data")
    shutil.copytree(table.parent / "data", out / "single" / "data")
    models = [ModelEntry("ours", calibrated_checkpoint), ModelEntry("other", trained.best)]
    path = robustness(models, PLAN, out, EVAL_SAMPLING, figures=0, progress=False)
    text = robustness_markdown(path, calibrated_checkpoint)
    assert text is not None and "| ours | na-low |" in text and "| other |" not in text
    assert robustness_markdown(None, calibrated_checkpoint) is None
    single = robustness([models[1]], PLAN, out / "single", EVAL_SAMPLING, progress=False)
    with pytest.raises(HazeMatchingError, match="holds no robustness measurement"):
        robustness_markdown(single, calibrated_checkpoint)


def test_model_card_states_the_training_ranges_of_a_randomised_model(trained) -> None:
    checkpoint = load_checkpoint(trained.best)
    assert checkpoint.data["simulation"]["randomize"] is None  # the fixture's data is fixed
    assert ranges_text(checkpoint) is None
    ranges = RandomizationConfig(numerical_aperture=(0.9, 1.2), structures={"puncta": (5, 9)})
    simulation = SimulationConfig(randomize=ranges).model_dump(mode="json")
    randomised = dataclasses.replace(checkpoint, data={**checkpoint.data, "simulation": simulation})
    text = ranges_text(randomised)
    assert text is not None and "NA 0.90-1.20" in text and "puncta 5.00-9.00" in text
    assert "PSF model: scalar, vectorial, gaussian" in text


def test_an_external_folder_of_pairs_is_a_condition_too(
    table: Path, calibrated_checkpoint: Path, sim_dir: Path, tmp_path: Path
) -> None:
    conditions = {
        "in-range": PLAN.conditions["in-range"],
        "elsewhere": RobustnessCondition(description="the fixture's pairs", data=sim_dir),
    }
    plan = PLAN.model_copy(update={"conditions": conditions})
    shutil.copytree(table.parent / "data" / "in-range", tmp_path / "o" / "data" / "in-range")
    model = [ModelEntry("m", calibrated_checkpoint)]
    rows = json.loads(robustness(model, plan, tmp_path / "o", EVAL_SAMPLING).read_text())["rows"]
    external = next(r for r in rows if r["condition"] == "elsewhere")
    report = json.loads((tmp_path / "o/reports/elsewhere/methods/m.json").read_text())
    assert report["data"] == str((sim_dir / "test").resolve())
    assert external["gain"] == pytest.approx(
        report["overall"]["mmse"]["ri_psnr"] - report["overall"]["input"]["ri_psnr"]
    )
    assert not (tmp_path / "o/data/elsewhere").exists()
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text('[conditions.a]\ndescription = "a"\nreference = true\n')
    done = invoke(
        "robustness",
        calibrated_checkpoint,
        "--conditions",
        plan_file,
        "--out",
        tmp_path / "p",
        "--data",
        "no-equals-sign",
    )
    assert done.exit_code != 0 and "NAME=FOLDER" in done.output


def test_bad_plans_fail_before_anything_is_written(calibrated_checkpoint: Path, tmp_path: Path):
    model = [ModelEntry("m", calibrated_checkpoint)]
    gone = {
        **PLAN.conditions,
        "gone": RobustnessCondition(description="x", data=tmp_path / "nowhere"),
    }
    with pytest.raises(HazeMatchingError, match="data folder not found"):
        robustness(model, PLAN.model_copy(update={"conditions": gone}), tmp_path / "a")
    drawn = {
        **PLAN.conditions,
        "pinned": RobustnessCondition(description="x", simulation={"numerical_aperture": 0.7}),
    }
    with pytest.raises(HazeMatchingError, match="drawn from the ranges"):
        robustness(model, PLAN.model_copy(update={"conditions": drawn}), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="is not simulated"):
        RobustnessCondition(description="x", data=tmp_path, simulation={"read_noise": 1.0})


def test_camera_conditions_record_the_pairs_as_that_camera_writes_them(tmp_path: Path) -> None:
    """A 16-bit camera with a baseline and 0.1 % saturation: integer counts within the range,
    about that share of pixels at the full scale, the target with the same gain and offset."""
    config = SimulationConfig(pairs=2, size=64, seed=4, split=(0.0, 0.0, 1.0))
    simulate(tmp_path, config, progress=False)
    before = load_pairs(tmp_path / "test")
    recording = CameraRecording(bits=16, baseline=100, saturated=0.001)
    record_pairs(tmp_path, recording)
    after = load_pairs(tmp_path / "test")
    for hazy, target, raw_hazy, raw_target in zip(
        after.inputs, after.targets, before.inputs, before.targets, strict=True
    ):
        assert np.array_equal(hazy, np.round(hazy)) and hazy.min() >= 0 and hazy.max() == 65535
        assert 1 <= np.count_nonzero(hazy == 65535) <= 0.002 * hazy.size + 1
        gain, offset = np.polyfit(raw_target.ravel(), target.ravel(), 1)
        assert offset == pytest.approx(100, abs=0.5)
        np.testing.assert_allclose(target, gain * raw_target + 100, rtol=1e-5, atol=1e-2)
        unsaturated = hazy < 65535
        np.testing.assert_allclose(
            hazy[unsaturated], np.round(gain * raw_hazy + 100)[unsaturated].clip(0), atol=1
        )
    assert json.loads((tmp_path / "simulation.json").read_text())["camera"]["bits"] == 16
