"""Packages in the form the deployed readers open, and those readers themselves.

The first tests run by default: what bioimageio.spec writes is what `for_deployed_readers`
expects (so a spec that writes otherwise fails here), the adaptation refuses forms it does not
know, and `check`'s reader rules catch each thing the readers refuse.

The tests marked `readers` open the bundled package, a fresh export and a Richardson-Lucy
package (the other kinds share the fresh export's sampler and description) in the readers' own
environments (`tools/reader_envs.sh` builds them; see tools/README.md): bioimageio.core 0.10.4 +
spec 0.5.10.2 + torch 2.5.1 (the bioimage.io website's test-run), bioimageio.core 0.10.2 + torch
2.7.1 (ilastik) and bioimageio.spec 0.5.14.3 (the zoo's newest validator). Each is skipped
while its variable is unset.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import ruyaml
import yaml

from hazematching.bioimage import reader_probe
from hazematching.bioimage.readers import (
    READERS_FORMAT_VERSION,
    UnexpectedSpecOutput,
    for_deployed_readers,
    readers_yaml,
    rewrite_for_deployed_readers,
)
from hazematching.config import SamplingConfig
from hazematching.data.simulate import PSF_FILE
from hazematching.export.deconvolution_package import export_richardson_lucy
from hazematching.export.package import ExportResult, export_package
from hazematching.export.reader_rules import BIOENGINE_PYTHON, reader_rules
from hazematching.export.recipe import NICKNAME_PATTERN, default_recipe, nickname_from
from hazematching.inference.bundled import bundled_model
from hazematching.training.loop import TrainResult
from hazematching.training.richardson_lucy import fit_richardson_lucy

RECIPE = default_recipe().model_copy(
    update={"sampling": SamplingConfig(samples=2, steps=2), "test_size": 32}
)
READERS = {
    "bioengine": os.environ.get(BIOENGINE_PYTHON),
    "ilastik": os.environ.get("HAZEMATCHING_ILASTIK_PYTHON"),
    "spec-newest": os.environ.get("HAZEMATCHING_SPEC_NEWEST_PYTHON"),
}


@pytest.fixture(scope="module")
def package(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return export_package(trained.best, tmp_path_factory.mktemp("readers") / "m.zip", RECIPE)


@pytest.fixture(scope="module")
def as_spec_writes(package: ExportResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exported package saved again by bioimageio.spec itself, without the adaptation."""
    from bioimageio.spec import load_description, save_bioimageio_package

    out = tmp_path_factory.mktemp("spec") / "written.zip"
    save_bioimageio_package(load_description(package.path), output_path=out)
    return out


def _raw(package: Path) -> dict:
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


def test_the_rewrite_changes_rdf_yaml_only_and_reads_back_in_both_yaml_versions(
    as_spec_writes: Path, tmp_path: Path
) -> None:
    rewritten = tmp_path / "rewritten.zip"
    shutil.copyfile(as_spec_writes, rewritten)
    rewrite_for_deployed_readers(rewritten)
    with zipfile.ZipFile(as_spec_writes) as before, zipfile.ZipFile(rewritten) as after:
        assert before.namelist() == after.namelist()
        for name in before.namelist():
            if name != "rdf.yaml":
                assert before.read(name) == after.read(name), name
        text = after.read("rdf.yaml").decode()
        written = ruyaml.YAML(typ="safe", pure=True).load(before.read("rdf.yaml").decode())
    adapted = for_deployed_readers(written)
    assert yaml.safe_load(text) == adapted  # YAML 1.1: PyYAML, SnakeYAML in the Java readers
    assert ruyaml.YAML(typ="safe", pure=True).load(text) == adapted  # 1.2: bioimageio.spec


def test_strings_yaml_versions_read_otherwise_are_quoted() -> None:
    tricky = {"tag": "no", "lr": 5e-05, "looks_like_a_number": "1e3", "ratio": "1:20"}
    text = readers_yaml(tricky)
    assert yaml.safe_load(text) == tricky
    assert ruyaml.YAML(typ="safe", pure=True).load(text) == tricky
    assert "'no'" in text and "'1e3'" in text


def test_bioimageio_spec_still_writes_what_the_adaptation_expects(as_spec_writes: Path) -> None:
    """Fails when a new bioimageio.spec writes these fields otherwise: revisit readers.py."""
    import bioimageio.spec

    written = _raw(as_spec_writes)
    assert written["format_version"].startswith("0.5.")
    assert written["format_version"] != READERS_FORMAT_VERSION, bioimageio.spec.__version__
    assert set(written["documentation"]) == {"source", "sha256"}
    assert all(set(cover) == {"source", "sha256"} for cover in written["covers"])
    adapted = for_deployed_readers(written)
    assert adapted["documentation"] == written["documentation"]["source"] == "README.md"
    assert adapted["covers"] == ["cover.png"]
    assert adapted["format_version"] == READERS_FORMAT_VERSION
    assert adapted.keys() == written.keys()


def test_the_export_is_adapted_and_still_valid_in_this_spec(package: ExportResult) -> None:
    from bioimageio.spec import load_description
    from bioimageio.spec.model import v0_5

    raw = _raw(package.path)
    assert raw["format_version"] == READERS_FORMAT_VERSION
    assert raw["documentation"] == "README.md" and raw["covers"] == ["cover.png"]
    assert isinstance(load_description(package.path), v0_5.ModelDescr)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("documentation", "README.md", "wrote documentation as 'README.md'"),
        ("documentation", {"source": "https://x.org/README.md"}, "wrote documentation"),
        ("documentation", {"source": "README.md", "size": 3}, "wrote documentation"),
        ("covers", [{"source": "cover.png"}, "b.png"], "wrote covers as 'b.png'"),
        ("covers", "cover.png", "wrote covers as 'cover.png', not as a list"),
        ("format_version", "0.6.0", "format_version '0.6.0'"),
    ],
)
def test_the_adaptation_refuses_forms_it_does_not_know(
    as_spec_writes: Path, field: str, value: object, message: str
) -> None:
    with pytest.raises(UnexpectedSpecOutput, match=message):
        for_deployed_readers({**_raw(as_spec_writes), field: value})


def _failed(rdf: dict, package: Path) -> set[str]:
    return {r.rule for r in reader_rules(rdf, package) if not r.passed}


def test_nicknames_follow_the_name_and_the_kind() -> None:
    assert nickname_from("HazeMatching dehazing", "unet") == "hazematching-dehazing-unet"
    assert nickname_from("HazeMatching dehazing", "hazematching") == "hazematching-dehazing"
    assert nickname_from("##", "") == "model"
    long = nickname_from("A very long model name " * 6, "richardson-lucy")
    assert len(long) <= 64 and re.fullmatch(NICKNAME_PATTERN, long) and long.startswith("a-very")
    with pytest.raises(ValueError, match="nickname"):
        RECIPE.model_validate({**RECIPE.model_dump(), "nickname": "Not Valid"})


def test_reader_rules_pass_the_export_and_name_what_each_reader_refuses(
    package: ExportResult, as_spec_writes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BIOENGINE_PYTHON, raising=False)
    rdf = _raw(package.path)
    assert _failed(rdf, package.path) == set()
    assert _failed(_raw(as_spec_writes), as_spec_writes) == {
        "documentation is a plain path (JDLL ModelDescriptor, QuPath Resource)",
        "covers are plain paths (JDLL ModelDescriptor, QuPath Resource)",
        "loads with bioimageio.spec 0.5.10 (BioEngine test-run, ilastik)",
    }
    del rdf["config"]["bioimageio"]["nickname"]
    assert _failed(rdf, package.path) == {
        "id or config.bioimageio.nickname (JDLL ModelDescriptorV05)"
    }
    rdf["id"] = "some-model"
    rdf["outputs"][0]["postprocessing"].append(
        {"id": "scale_linear", "kwargs": {"axis": "channel", "gain": [2.0, 2.0], "offset": [1, 0]}}
    )
    rdf["inputs"][0]["preprocessing"].append(
        {"id": "fixed_zero_mean_unit_variance", "kwargs": {"mean": 1.0, "std": 2.0}}
    )
    assert _failed(rdf, package.path) == {
        "no per-channel scale_linear (JDLL gives every channel the first one's)",
        "processing QuPath applies (BioimageIoTools)",
    }
    rdf["config"]["deepimagej"] = {"allow_tiling": False}
    assert "deepImageJ may tile axes with a size step (JDLL TileCalculator)" in _failed(
        rdf, package.path
    )


# --- the readers themselves ----------------------------------------------------------------


def _probe(python: str, package: Path, run_tests: bool) -> dict:
    args = [python, "-I", reader_probe.__file__, str(package)] + (["--test"] if run_tests else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def richardson_lucy(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Richardson-Lucy package: the one kind whose package is built apart from the sampler's."""
    folder = tmp_path_factory.mktemp("rl")
    fit_richardson_lucy(
        sim_dir / PSF_FILE, sim_dir, folder / "rl", max_iterations=2, progress=False
    )
    recipe = default_recipe().model_copy(update={"test_size": 32})  # deterministic: no sampling
    return export_richardson_lucy(folder / "rl", folder / "rl.zip", recipe).path


def _packages(package: ExportResult, richardson_lucy: Path) -> dict[str, Path]:
    return {
        "bundled": bundled_model() / "rdf.yaml",
        "fresh export": package.path,
        "richardson-lucy": richardson_lucy,
    }


@pytest.mark.readers
@pytest.mark.parametrize("reader", ["bioengine", "ilastik"])
def test_bioimageio_core_010_opens_and_passes_the_packages(
    package: ExportResult, richardson_lucy: Path, reader: str
) -> None:
    python = READERS[reader]
    if python is None:
        pytest.skip(f"set the variable of the {reader} environment (tools/reader_envs.sh)")
    for name, path in _packages(package, richardson_lucy).items():
        report = _probe(python, path, run_tests=True)
        assert report["core"].startswith("0.10."), report
        assert report["valid"] and report["test_model"] == "passed", (name, report)


@pytest.mark.readers
def test_the_newest_spec_validates_the_packages(
    package: ExportResult, richardson_lucy: Path
) -> None:
    python = READERS["spec-newest"]
    if python is None:
        pytest.skip("set HAZEMATCHING_SPEC_NEWEST_PYTHON (tools/reader_envs.sh)")
    for name, path in _packages(package, richardson_lucy).items():
        report = _probe(python, path, run_tests=False)
        assert report["spec"] == "0.5.14.3" and report["valid"], (name, report)


@pytest.mark.readers
def test_the_spec_0_5_10_rule_agrees_with_that_reader(
    package: ExportResult, as_spec_writes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule checked without the reader, the rule run in it, and the reader agree."""
    python = READERS["bioengine"]
    if python is None:
        pytest.skip(f"set {BIOENGINE_PYTHON} (tools/reader_envs.sh)")
    rule = "loads with bioimageio.spec 0.5.10 (BioEngine test-run, ilastik)"
    for path, valid in ((package.path, True), (as_spec_writes, False)):
        assert _probe(python, path, run_tests=False)["valid"] is valid
        monkeypatch.delenv(BIOENGINE_PYTHON, raising=False)
        assert (rule in _failed(_raw(path), path)) is not valid
        monkeypatch.setenv(BIOENGINE_PYTHON, python)
        assert (rule in _failed(_raw(path), path)) is not valid
