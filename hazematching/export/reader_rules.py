"""Rules of `hazematching check` for the readers people run, each naming the reader it protects.

They read `rdf.yaml` as written (the validated description hides its form) and encode what the
readers' code does with it (bioimage-io/JDLL 0.6, qupath/qupath-bioimageio-spec and QuPath's
`BioimageIoTools`, bioimageio.spec 0.5.10; `bioimage/readers.py` says why). The spec-0.5.10 rule
opens the package in that reader itself when `HAZEMATCHING_BIOENGINE_PYTHON` names a Python that
has it (`tools/reader_envs.sh` builds one); otherwise it checks what that reader was measured to
refuse.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from ..bioimage import reader_probe
from .rules import RuleResult

BIOENGINE_PYTHON = "HAZEMATCHING_BIOENGINE_PYTHON"
# QuPath's BioimageIoTools.transformToOp turns these into image ops and skips every other step;
# it casts inputs to float32 itself, so ensure_dtype loses nothing
QUPATH_PROCESSING = {
    "binarize",
    "clip",
    "ensure_dtype",
    "scale_linear",
    "scale_range",
    "sigmoid",
    "zero_mean_unit_variance",
}


def reader_rules(rdf: dict[str, Any], package: Path) -> list[RuleResult]:
    """Every deployed-reader rule for the raw description `rdf` of the package at `package`."""
    documentation = rdf.get("documentation")
    covers = rdf.get("covers") or []
    bad_covers = [repr(c) for c in covers if not isinstance(c, str)]
    config = rdf.get("config") or {}
    nickname = (config.get("bioimageio") or {}).get("nickname")
    name = rdf.get("id") or nickname
    steps = _processing(rdf)
    per_channel = [
        f"{tensor}: gain {kwargs.get('gain')}, offset {kwargs.get('offset')}"
        for tensor, step, kwargs in steps
        if step == "scale_linear" and _varies(kwargs)
    ]
    skipped = sorted({step for _, step, _ in steps} - QUPATH_PROCESSING)
    return [
        RuleResult(
            "documentation is a plain path (JDLL ModelDescriptor, QuPath Resource)",
            isinstance(documentation, str),
            repr(documentation),
        ),
        RuleResult(
            "covers are plain paths (JDLL ModelDescriptor, QuPath Resource)",
            bool(covers) and not bad_covers,
            ", ".join(bad_covers) or ", ".join(map(str, covers)) or "no covers",
        ),
        RuleResult(
            "id or config.bioimageio.nickname (JDLL ModelDescriptorV05)",
            isinstance(name, str) and bool(name),
            f"id {rdf['id']}" if rdf.get("id") else f"nickname {nickname}",
        ),
        _spec_0_5_10_rule(rdf, package),
        RuleResult(
            "no per-channel scale_linear (JDLL gives every channel the first one's)",
            not per_channel,
            "; ".join(per_channel) or "none",
        ),
        RuleResult(
            "processing QuPath applies (BioimageIoTools)",
            not skipped,
            ", ".join(skipped) + " skipped" if skipped else "all applied",
        ),
        _tiling_rule(rdf),
    ]


def _tiling_rule(rdf: dict[str, Any]) -> RuleResult:
    """JDLL with tiling off leaves input axes that have a size step at tile size -1, and its
    own step check then refuses the tile (`TileCalculator`, `TileMaker.validateStepMin`);
    a `config.deepimagej` without `allow_tiling` means off."""
    deepimagej = (rdf.get("config") or {}).get("deepimagej")
    off = isinstance(deepimagej, dict) and not deepimagej.get("allow_tiling", False)
    stepped = [
        f"{tensor.get('id')}.{axis.get('id')}"
        for tensor in rdf.get("inputs") or []
        for axis in tensor.get("axes") or []
        if isinstance(axis.get("size"), dict) and axis["size"].get("step")
    ]
    detail = "tiling allowed" if not off else "tiling off"
    if stepped:
        detail += f"; stepped axes {', '.join(stepped)}"
    return RuleResult(
        "deepImageJ may tile axes with a size step (JDLL TileCalculator)",
        not (off and stepped),
        detail,
    )


def _processing(rdf: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(tensor id, step id, kwargs) of every pre- and postprocessing step."""
    steps = []
    for key, field in (("inputs", "preprocessing"), ("outputs", "postprocessing")):
        for tensor in rdf.get(key) or []:
            for step in tensor.get(field) or []:
                steps.append((str(tensor.get("id")), str(step.get("id")), step.get("kwargs") or {}))
    return steps


def _varies(kwargs: dict[str, Any]) -> bool:
    """Whether gain or offset differ between channels (a list of unequal values)."""
    return any(
        isinstance(values, list) and len(set(values)) > 1
        for values in (kwargs.get("gain"), kwargs.get("offset"))
    )


def _spec_0_5_10_rule(rdf: dict[str, Any], package: Path) -> RuleResult:
    rule = "loads with bioimageio.spec 0.5.10 (BioEngine test-run, ilastik)"
    python = os.environ.get(BIOENGINE_PYTHON)
    if python:
        return _opened_in(python, package, rule)
    mappings = [
        field
        for field, value in (
            ("documentation", rdf.get("documentation")),
            *(("covers", c) for c in rdf.get("covers") or []),
        )
        if isinstance(value, dict)
    ]
    return RuleResult(
        rule,
        not mappings,
        (
            f"{', '.join(sorted(set(mappings)))} written as file descriptions, which it refuses"
            if mappings
            else "no field it refuses"
        )
        + f" (set {BIOENGINE_PYTHON} to open the package in it)",
    )


def _opened_in(python: str, package: Path, rule: str) -> RuleResult:
    """The rule as the spec-0.5.10 reader at `python` decides it; a reader that does not run,
    or is another version, fails the rule with the reason."""
    try:
        done = subprocess.run(
            [python, "-I", reader_probe.__file__, str(package)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, IndexError, ValueError) as error:
        return RuleResult(rule, False, f"{BIOENGINE_PYTHON}={python} did not run ({error})")
    version = str(report.get("spec"))
    if not version.startswith("0.5.10"):
        return RuleResult(rule, False, f"{python} holds bioimageio.spec {version}, not 0.5.10")
    detail = f"spec {version} at {python}"
    if not report["valid"]:
        detail += ": " + "; ".join(report.get("errors", []))
    return RuleResult(rule, report["valid"], detail)
