"""`check` on a real export and on packages broken on purpose: it names the broken rule."""

from __future__ import annotations

import dataclasses
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hazematching.bioimage.github import is_github_user, package_github_users
from hazematching.config import SamplingConfig
from hazematching.errors import HazeMatchingError
from hazematching.export.check import RuleResult, check_package
from hazematching.export.package import export_package
from hazematching.export.recipe import ExportRecipe, Maintainer, default_recipe
from hazematching.training.loop import TrainResult
from tests.helpers import run

# "octocat" is GitHub's own example account; offline it cannot be verified, online it exists
RECIPE = default_recipe().model_copy(
    update={
        "sampling": SamplingConfig(samples=2, steps=2),
        "test_size": 32,
        "maintainers": [Maintainer(github_user="octocat", name="Octo Cat")],
    }
)


@pytest.fixture(scope="module")
def package(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_package(trained.best, tmp_path_factory.mktemp("chk") / "m.zip", RECIPE).path


@dataclasses.dataclass(frozen=True)
class Checked:
    """The rules' results on the module's package, and the global random streams around it."""

    results: dict[str, RuleResult]
    streams_expected: tuple
    streams_after: tuple


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _draw() -> tuple:
    return torch.rand(3), np.random.rand(3), random.random()


@pytest.fixture(scope="module")
def checked(package: Path) -> Checked:
    """One check of the package, run between seeding the global generators and drawing from
    them (the draws a caller would get without the check are drawn first)."""
    _seed_all(11)
    expected = _draw()
    _seed_all(11)
    results = {r.rule: r for r in check_package(package)}
    return Checked(results, expected, _draw())


@pytest.fixture(scope="module")
def results(checked: Checked) -> dict[str, RuleResult]:
    return checked.results


def _unpack(package: Path, folder: Path) -> tuple[Path, dict]:
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder, yaml.safe_load((folder / "rdf.yaml").read_text())


def _failed(folder: Path) -> set[str]:
    return {r.rule for r in check_package(folder) if not r.passed}


def test_export_with_a_maintainer_passes_every_rule(
    package: Path, results: dict[str, RuleResult]
) -> None:
    failed = {name for name, r in results.items() if not r.passed}
    assert failed == set()
    assert results["bioimageio.core test_model (cpu)"].detail == "passed"
    assert results["size"].detail == f"{package.stat().st_size / 1e6:.1f} MB"
    # the account is looked up apart from the model tests: verified online, reported offline
    assert results["maintainers"].detail.startswith("octocat (")
    assert package_github_users(package) == ["octocat"]


def test_check_leaves_the_callers_random_streams(checked: Checked) -> None:
    """`test_model` and the unseeded rule seed the global generators; the caller's come back."""
    expected, after = checked.streams_expected, checked.streams_after
    assert torch.equal(after[0], expected[0])
    assert np.array_equal(after[1], expected[1])
    assert after[2] == expected[2]


def test_missing_maintainers_are_named(package: Path, tmp_path: Path) -> None:
    folder, rdf = _unpack(package, tmp_path)
    del rdf["maintainers"]
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    results = {r.rule: r for r in check_package(folder)}
    assert {name for name, r in results.items() if not r.passed} == {"maintainers"}
    assert "--maintainer" in results["maintainers"].detail


def test_maintainer_names_are_validated() -> None:
    assert is_github_user("octocat") and is_github_user("a-b1")
    for bad in ("-lead", "trail-", "dou--ble", "with space", "x" * 40, ""):
        assert not is_github_user(bad)
        with pytest.raises(ValueError, match="github_user"):
            ExportRecipe.model_validate(
                {**RECIPE.model_dump(), "maintainers": [{"github_user": bad}]}
            )


def test_two_outputs_are_named(package: Path, tmp_path: Path) -> None:
    folder, rdf = _unpack(package, tmp_path)
    second = {**rdf["outputs"][0], "id": "extra"}
    rdf["outputs"].append(second)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    assert "one output" in _failed(folder)


def test_unsupported_postprocessing_is_named(package: Path, tmp_path: Path) -> None:
    folder, rdf = _unpack(package, tmp_path)
    rdf["outputs"][0]["postprocessing"].insert(
        0, {"id": "scale_mean_variance", "kwargs": {"reference_tensor": "hazy"}}
    )
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    failed = _failed(folder)
    assert "processing supported by JDLL" in failed


def test_missing_cover_is_named(package: Path, tmp_path: Path) -> None:
    folder, rdf = _unpack(package, tmp_path)
    (folder / rdf["covers"][0]).unlink()
    rdf["covers"] = []
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    assert "cover under 500 KB" in _failed(folder)


def test_mismatched_test_output_is_named(package: Path, tmp_path: Path) -> None:
    folder, rdf = _unpack(package, tmp_path)
    output = rdf["outputs"][0]["test_tensor"]
    data = np.load(folder / output["source"])
    np.save(folder / output["source"], data * 1.1 + 1.0)
    output.pop("sha256", None)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    failed = _failed(folder)
    assert "reproduces test output unseeded (1.5e-4 + 1e-4|x|)" in failed
    assert "bioimageio.core test_model (cpu)" in failed


def test_not_a_package(tmp_path: Path) -> None:
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(HazeMatchingError, match="not a readable zip"):
        check_package(tmp_path / "broken.zip")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "rdf.yaml").write_text("{unclosed")
    with pytest.raises(HazeMatchingError, match="cannot open model package"):
        check_package(tmp_path / "folder")
    done = run("check", tmp_path / "missing.zip")
    assert done.returncode == 1 and done.stderr.count("error:") == 1
    with zipfile.ZipFile(tmp_path / "notapkg.zip", "w") as archive:
        archive.writestr("notes.txt", "no description here")
    done = run("check", tmp_path / "notapkg.zip")
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {tmp_path / 'notapkg.zip'}: no rdf.yaml in the package"
    with zipfile.ZipFile(tmp_path / "broken-rdf.zip", "w") as archive:
        archive.writestr("rdf.yaml", "{unclosed")
    with pytest.raises(HazeMatchingError) as raised:
        check_package(tmp_path / "broken-rdf.zip")
    assert str(raised.value).startswith(f"{tmp_path / 'broken-rdf.zip'}:")
    assert "hazematching-check-" not in str(raised.value)


def test_cli_lists_rules_and_exit_status(package: Path, tmp_path: Path) -> None:
    shutil.copyfile(package, tmp_path / "m.zip")
    done = run("check", tmp_path / "m.zip")
    assert done.returncode == 0, done.stderr
    assert "pass  one input" in done.stdout and "pass  maintainers" in done.stdout
    assert "rules passed" in done.stdout
    folder, rdf = _unpack(package, tmp_path / "unpacked")
    rdf["maintainers"] = []
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    done = run("check", folder)
    assert done.returncode == 1
    assert "FAIL  maintainers" in done.stdout
    assert "1 rule(s) failed: maintainers" in done.stderr
