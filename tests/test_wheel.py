"""A built wheel (what `pip install .` installs) works outside the repository, with its model.

The wheel is built from a copy of the project (setuptools writes build/ and *.egg-info next to
its sources, and a stale build/lib would leak into the wheel), then installed without its
dependencies into a fresh virtual environment in a temporary folder. The dependencies come from
the running environment through a `.pth` file: a plain path there goes after the new
environment's own site-packages, so the wheel's `hazematching` wins over the editable one, and
the `.pth` files of the running environment (its editable-install hook) are not executed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import tifffile

from hazematching.inference.bundled import DEFAULT_MODEL
from tests.helpers import EXAMPLES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = EXAMPLES / "widefield_1.tif"
MODEL = ROOT / "model_zoo" / DEFAULT_MODEL
NOT_SOURCES = (".git", ".venv", "build", "*.egg-info", "__pycache__", "out", "runs", ".*_cache")


def _pip(*args: object) -> None:
    """pip of the running environment, quietly."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    subprocess.run(list(map(str, command)), check=True, timeout=600)


def _outside(env_dir: Path, *args: object) -> subprocess.CompletedProcess[str]:
    """A program of the new environment, run from its folder with no PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    command = [str(env_dir / "bin" / str(args[0])), *map(str, args[1:])]
    return subprocess.run(
        command, cwd=env_dir.parent, env=env, capture_output=True, text=True, timeout=600
    )


def _site_packages(env_dir: Path) -> Path:
    """The site-packages folder of the virtual environment in `env_dir`."""
    done = _outside(
        env_dir, "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
    )
    return Path(done.stdout.strip()).resolve()


def _installed_model(env_dir: Path) -> Path:
    """Where the wheel puts the bundled model in the virtual environment in `env_dir`."""
    return _site_packages(env_dir) / "hazematching" / "model_zoo" / DEFAULT_MODEL


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of a clean copy of the project, as `pip install .` builds it.

    Offline with this environment's setuptools when it has one (environments of Python 3.12 and
    later start without); otherwise pip fetches the build requirements.
    """
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    offline = ["--no-build-isolation", "--no-index"] if find_spec("setuptools") else []
    _pip("wheel", source, "--no-deps", *offline, "--wheel-dir", folder / "dist")
    (built,) = (folder / "dist").glob("hazematching-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the wheel; returns its folder."""
    env_dir = tmp_path_factory.mktemp("outside") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env_dir], check=True)
    _pip("--python", env_dir / "bin" / "python", "install", "--no-deps", "--no-index", wheel)
    ours = dict.fromkeys(sysconfig.get_path(kind) for kind in ("purelib", "platlib"))
    (_site_packages(env_dir) / "dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return env_dir


def test_wheel_holds_every_module_the_model_and_only_its_checkpoint(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "hazematching").rglob("*.py")}
    assert modules <= names
    # the package's files and the checkpoint it was exported from (for block-wise sampling),
    # not the rest of the training/ record (history, plots) beside it
    model = {
        f"hazematching/model_zoo/{DEFAULT_MODEL}/{p.name}" for p in MODEL.iterdir() if p.is_file()
    } | {f"hazematching/model_zoo/{DEFAULT_MODEL}/training/best.pt"}
    assert {name for name in names if name.startswith("hazematching/model_zoo/")} == model


def test_installed_package_and_bundled_model_come_from_the_new_environment(
    installed: Path,
) -> None:
    code = (
        "import json, hazematching; from hazematching.inference.bundled import bundled_model; "
        "print(json.dumps([hazematching.__file__, str(bundled_model())]))"
    )
    done = _outside(installed, "python", "-c", code)
    assert done.returncode == 0, done.stderr
    module, model = (Path(path).resolve() for path in json.loads(done.stdout))
    assert module == _site_packages(installed) / "hazematching" / "__init__.py"
    assert model == _installed_model(installed)


def test_installed_command_predicts_like_the_repository(
    installed: Path, main_command: Path
) -> None:
    shutil.copy(EXAMPLE, installed.parent)
    done = _outside(
        installed, "hazematching", "predict", EXAMPLE.name, "--out", "out", "--no-progress"
    )
    assert done.returncode == 0, done.stderr
    used = json.loads((installed.parent / "out" / "predict.json").read_text())["model"]
    assert Path(used).resolve() == _installed_model(installed)
    # same code, weights and seed on the same machine: the very same numbers
    result = tifffile.imread(installed.parent / "out" / EXAMPLE.name)
    assert np.array_equal(result, tifffile.imread(main_command / EXAMPLE.name))
