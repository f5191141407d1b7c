"""`hazematching robustness`: how a model holds up on conditions it was not trained on.

Each condition of a `RobustnessPlan` is a simulated test set (written once into
OUT/data/<condition> and reused) or a folder of pairs from elsewhere; every model is evaluated
on it with `evaluate` (a full report per condition in OUT/reports/<condition>). The table gives,
per model and condition, the MMSE gain over the hazy input, that gain as a share of the model's
gain on the reference (in-range) condition, the calibrated ENCE and how the calibrated std
compares with the actual error, which shows whether the std flags the conditions where the
model is less accurate.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..config import CameraRecording, RobustnessPlan, SamplingConfig, SimulationConfig, load_toml
from ..data.camera import recording_camera
from ..data.simulate import simulate
from ..data.tiff import INPUT_CHANNEL, TARGET_CHANNEL, read_pair, write_tiff
from ..errors import HazeMatchingError, describe_validation_error
from ..fileio import check_output_folder, write_json, write_text
from .compute import evaluate

DATA = "data"
REPORTS = "reports"
TABLE = "robustness"


@dataclass(frozen=True)
class ModelEntry:
    """A model to measure and its name in the table."""

    name: str
    path: Path


def load_plan(path: Path, external: dict[str, Path] | None = None) -> RobustnessPlan:
    """A TOML plan, its conditions' data folders taken relative to the plan file (as recipes
    do), with one more condition per `external` entry: NAME -> a folder of paired images not
    from this simulator (another simulator, a microscope)."""
    stored = load_toml(path, RobustnessPlan, "robustness plan").model_dump()
    for condition in stored["conditions"].values():
        if condition["data"] is not None and not Path(condition["data"]).is_absolute():
            condition["data"] = Path(path).parent / condition["data"]
    extra = {
        name: {
            "description": f"paired images of {folder}, not from this simulator",
            "out_of_range": "another data source",
            "data": folder,
        }
        for name, folder in (external or {}).items()
    }
    clash = sorted(set(extra) & set(stored["conditions"]))
    if clash:
        raise HazeMatchingError(f"--data names {clash} are conditions of the plan already")
    return RobustnessPlan.model_validate(
        {**stored, "conditions": {**stored["conditions"], **extra}}
    )


def condition_config(plan: RobustnessPlan, name: str) -> SimulationConfig:
    """The simulation of condition `name`: a test set only, seeded by the plan.

    Fixed `simulation` values of a randomised condition may not name a factor the ranges draw
    (the draw would silently replace them; `SimulationConfig` refuses it): pin the range instead.
    """
    condition = plan.conditions[name]
    try:
        return SimulationConfig.model_validate(
            {
                **condition.simulation,
                "pairs": plan.pairs,
                "size": plan.size,
                "seed": plan.seed,
                "split": (0.0, 0.0, 1.0),
                "randomize": condition.ranges if condition.randomize else None,
            }
        )
    except ValidationError as error:
        raise HazeMatchingError(
            f"condition {name!r}: {describe_validation_error(error)}"
        ) from error


def _test_set(out_dir: Path, plan: RobustnessPlan, name: str, progress: bool) -> Path:
    """The condition's own data folder, or OUT/data/<name>, simulated unless it already holds
    exactly this condition."""
    if plan.conditions[name].data is not None:
        return Path(plan.conditions[name].data)
    config = condition_config(plan, name)
    folder = out_dir / DATA / name
    manifest = folder / "simulation.json"
    if manifest.is_file():
        try:
            record = json.loads(manifest.read_text())
            stored = SimulationConfig.model_validate(record["config"])
        except (OSError, ValueError, KeyError) as error:
            raise HazeMatchingError(
                f"unreadable simulation record ({type(error).__name__}); use a new --out", manifest
            ) from error
        camera = plan.conditions[name].camera
        if stored != config or record.get("camera") != (
            camera.model_dump(mode="json") if camera else None
        ):
            raise HazeMatchingError(
                f"holds another simulation than condition {name!r}; use a new --out", folder
            )
        return folder
    if folder.exists():  # an interrupted simulation (the record is written last): start over
        shutil.rmtree(folder)
    simulate(folder, config, progress=progress)
    recording = plan.conditions[name].camera
    if recording is not None:
        record_pairs(folder, recording)
    return folder


def record_pairs(folder: Path, recording: CameraRecording) -> None:
    """Rewrite the simulated test pairs of `folder` as `recording`'s camera writes them: the
    widefield input recorded, the confocal target with the same gain and offset. Done before
    the simulation record is written, so an interrupted run starts over."""
    manifest = folder / "simulation.json"
    stored = manifest.read_text()
    manifest.unlink()
    for path in sorted((folder / "test").glob("*.tif")):
        hazy, target = read_pair(path)
        camera = recording_camera(recording, hazy)
        stack = np.empty((2, *hazy.shape[1:]), np.float32)
        stack[INPUT_CHANNEL], stack[TARGET_CHANNEL] = (
            camera.record(hazy[0]),
            camera.rescale(target[0]),
        )
        write_tiff(path, stack, "CYX", ["confocal", "widefield"])
    record = json.loads(stored)
    record["camera"] = recording.model_dump(mode="json")
    write_json(manifest, record)


def _row(condition: str, model: str, overall: dict[str, Any]) -> dict[str, Any]:
    calibration = overall.get("calibration") or {}
    gain = overall["mmse"]["ri_psnr"] - overall["input"]["ri_psnr"]
    return {
        "condition": condition,
        "model": model,
        "input_ri_psnr": overall["input"]["ri_psnr"],
        "mmse_ri_psnr": overall["mmse"]["ri_psnr"],
        "gain": gain,
        "ence_calibrated": calibration.get("calibrated_error"),
        "std_to_error": calibration.get("std_to_error"),
        "std_rel": calibration.get("std_rel"),
        "error_rel": calibration.get("error_rel"),
    }


def _with_shares(plan: RobustnessPlan, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's gain as a share of the same model's gain on the reference condition."""
    reference = next(name for name, c in plan.conditions.items() if c.reference)
    base = {r["model"]: r["gain"] for r in rows if r["condition"] == reference}
    return [
        {**r, "share_of_reference_gain": r["gain"] / base[r["model"]] if base[r["model"]] else None}
        for r in rows
    ]


def _number(value: float | None, digits: int, scale: float = 1.0, unit: str = "") -> str:
    """`value` x `scale` with `digits` decimals and `unit`; '-' for a missing value."""
    return "-" if value is None else f"{scale * value:.{digits}f}{unit}"


def robustness_table(plan: RobustnessPlan, rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: what was measured, the table (rows as given) and each condition."""
    lines = [
        f"{plan.pairs} test pairs of {plan.size} px per condition, simulation seed {plan.seed}. "
        "Gain: MMSE RI-PSNR minus hazy-input RI-PSNR (dB). Share: of the same model's gain on "
        "the reference condition. std / error: root-mean-square calibrated std over the RMS "
        "error of all test pixels (1 = right on average, < 1 overconfident); std and error also "
        "as % of the target's range (per-image RMS, averaged over images).",
        "",
        "| model | condition | outside the training ranges | input (dB) | MMSE (dB) | gain (dB) "
        "| share | ENCE calibrated | std / error | std (% range) | error (% range) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        condition = plan.conditions[r["condition"]]
        lines.append(
            f"| {r['model']} | {r['condition']} | {condition.out_of_range or '(in range)'} "
            f"| {r['input_ri_psnr']:.2f} | {r['mmse_ri_psnr']:.2f} | {r['gain']:+.2f} "
            f"| {_number(r['share_of_reference_gain'], 0, 100, ' %')} "
            f"| {_number(r['ence_calibrated'], 3)} | {_number(r['std_to_error'], 2)} "
            f"| {_number(r['std_rel'], 2, 100)} | {_number(r['error_rel'], 2, 100)} |"
        )
    lines += ["", "Conditions:", ""]
    lines += [f"- `{name}`: {c.description}" for name, c in plan.conditions.items()]
    return lines


def robustness(
    models: list[ModelEntry],
    plan: RobustnessPlan,
    out_dir: Path,
    sampling: SamplingConfig | None = None,
    *,
    figures: int = 2,
    device: str = "auto",
    progress: bool = True,
) -> Path:
    """Evaluate every model on every condition; write OUT/robustness.json and .md.

    Returns the path of robustness.json. Test sets already in OUT/data are reused when they
    hold the same simulation, so models can be added to a table later.
    """
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise HazeMatchingError(f"model names must differ, got {names}; pass --names")
    for name, condition in plan.conditions.items():
        if condition.data is not None and not Path(condition.data).is_dir():
            raise HazeMatchingError(f"condition {name!r}: data folder not found", condition.data)
        if condition.data is None:
            condition_config(plan, name)  # every simulation valid before anything is written
    out_dir = check_output_folder(out_dir)
    rows = []
    for condition in plan.conditions:
        data = _test_set(out_dir, plan, condition, progress)
        for model in models:
            result = evaluate(
                model.path,
                data,
                out_dir / REPORTS / condition,
                sampling,
                name=model.name,
                figures=figures,
                device=device,
                progress=progress,
            )
            rows.append(_row(condition, model.name, result.overall))
    rows = sorted(_with_shares(plan, rows), key=lambda r: names.index(r["model"]))
    table = out_dir / f"{TABLE}.json"
    write_json(
        table,
        {
            "plan": plan.model_dump(mode="json"),
            "models": {m.name: str(m.path) for m in models},
            "sampling": sampling.model_dump(mode="json") if sampling else None,
            "rows": rows,
        },
    )
    text = ["# Robustness on held-out conditions", "", *robustness_table(plan, rows)]
    write_text(out_dir / f"{TABLE}.md", "\n".join(text) + "\n")
    return table
