"""The package's TorchScript outside this environment: libtorch from C++, and an older torch.

Opt-in (`-m runtimes`): they need a C++ compiler, or a second Python environment with torch 2.0
(the libtorch version JDLL ships to deepImageJ and Icy). See tools/README.md.

Java tools run a package's pre- and postprocessing themselves and only hand tensors to libtorch.
Our packages map intensities inside the TorchScript and declare no processing (but the
`ensure_dtype` bioimageio.spec adds), so the raw forward in the other runtime must reproduce the
package's test output within the package's own tolerance.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from hazematching.config import SamplingConfig
from hazematching.export.check import DEEPIMAGEJ_ATOL, DEEPIMAGEJ_RTOL
from hazematching.export.package import export_package
from hazematching.export.recipe import default_recipe
from hazematching.inference.bundled import bundled_model
from hazematching.training.loop import TrainResult

pytestmark = pytest.mark.runtimes

REPO = Path(__file__).resolve().parents[1]
TORCH20_PYTHON = os.environ.get("HAZEMATCHING_TORCH20_PYTHON")
RECIPE = default_recipe().model_copy(
    update={"sampling": SamplingConfig(samples=3, steps=4), "test_size": 64}
)


@pytest.fixture(scope="module", params=["tiny", "bundled"])
def unpacked(
    request: pytest.FixtureRequest, trained: TrainResult, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A tiny exported package (3 samples x 4 steps), and the bundled few-step package."""
    folder = tmp_path_factory.mktemp("runtime")
    if request.param == "bundled":
        shutil.copytree(bundled_model(), folder / "pkg", ignore=shutil.ignore_patterns("training"))
        return folder / "pkg"
    package = export_package(trained.best, folder / "m.zip", RECIPE).path
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder / "pkg")
    return folder / "pkg"


def _test_input(folder: Path) -> tuple[Path, dict]:
    """The package's test input and description; it declares no processing a runtime must do."""
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    hazy, dehazed = rdf["inputs"][0], rdf["outputs"][0]
    steps = [p["id"] for p in hazy["preprocessing"] + dehazed["postprocessing"]]
    assert set(steps) <= {"ensure_dtype"}, steps
    return folder / hazy["test_tensor"]["source"], rdf


def _compare(result: np.ndarray, folder: Path, rdf: dict) -> float:
    """Max |difference| to the test output, which must hold within the package's tolerance."""
    expected = np.load(folder / rdf["outputs"][0]["test_tensor"]["source"])
    tolerance = rdf["config"]["bioimageio"]["reproducibility_tolerance"][0]
    limit = tolerance["absolute_tolerance"] + tolerance["relative_tolerance"] * np.abs(expected)
    assert (np.abs(result - expected) <= limit).all()
    # and deepImageJ's own comparison, which is stricter near zero
    assert (np.abs(result - expected) <= DEEPIMAGEJ_ATOL + DEEPIMAGEJ_RTOL * np.abs(expected)).all()
    return float(np.abs(result - expected).max())


def _python_reference(folder: Path, rdf: dict, tensor: Path) -> np.ndarray:
    import torch

    module = torch.jit.load(str(folder / rdf["weights"]["torchscript"]["source"]))
    with torch.no_grad():
        return module(torch.from_numpy(np.load(tensor))).numpy()


def _torch_of(python: str) -> tuple[Path, str, int]:
    """Install folder, version and C++ ABI flag of the torch that `python` imports."""
    probe = "import torch; print(torch.__file__); print(torch.__version__); "
    probe += "print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
    lines = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    return Path(lines[0]).parent, lines[1], int(lines[2])


def _build_runner(python: str, exe: Path) -> str:
    """Compile tools/torchscript_runner.cpp against the libtorch inside `python`'s torch."""
    lib, version, abi = _torch_of(python)
    major, minor = (int(part) for part in version.split(".")[:2])
    standard = "-std=c++20" if (major, minor) >= (2, 8) else "-std=c++17"
    subprocess.run(
        [
            "g++",
            "-O1",
            standard,
            f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
            str(REPO / "tools" / "torchscript_runner.cpp"),
            "-o",
            str(exe),
            f"-I{lib / 'include'}",
            f"-I{lib / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
            f"-L{lib / 'lib'}",
            f"-Wl,-rpath,{lib / 'lib'}",
            "-Wl,--no-as-needed",
            "-ltorch_cpu",
            "-lc10",
        ],
        check=True,
        timeout=600,
    )
    return version


RUNTIMES = [sys.executable] + ([TORCH20_PYTHON] if TORCH20_PYTHON else [])


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("python", RUNTIMES, ids=["wheel", "torch20"][: len(RUNTIMES)])
def test_cpp_libtorch_program_reproduces_the_test_output(
    unpacked: Path, tmp_path: Path, python: str
) -> None:
    exe = tmp_path / "torchscript_runner"
    version = _build_runner(python, exe)
    tensor, rdf = _test_input(unpacked)
    model = unpacked / rdf["weights"]["torchscript"]["source"]
    done = subprocess.run(
        [str(exe), str(model), str(tensor), str(tmp_path / "out.npy")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    raw = np.load(tmp_path / "out.npy")
    if python == sys.executable:  # the same libtorch as this Python: bit for bit
        np.testing.assert_array_equal(raw, _python_reference(unpacked, rdf, tensor))
    diff = _compare(raw, unpacked, rdf)
    print(f"C++ against libtorch {version} ({done.stdout.strip()}): max |diff| {diff}")


@pytest.mark.skipif(TORCH20_PYTHON is None, reason="set HAZEMATCHING_TORCH20_PYTHON")
def test_torch_2_0_reproduces_the_test_output(unpacked: Path, tmp_path: Path) -> None:
    tensor, rdf = _test_input(unpacked)
    model = unpacked / rdf["weights"]["torchscript"]["source"]
    script = (
        "import sys, numpy as np, torch\n"
        "m = torch.jit.load(sys.argv[1]).eval()\n"
        "with torch.no_grad():\n"
        "    y = m(torch.from_numpy(np.load(sys.argv[2])))\n"
        "np.save(sys.argv[3], y.numpy())\n"
        "print(torch.__version__)\n"
    )
    done = subprocess.run(
        [TORCH20_PYTHON, "-c", script, str(model), str(tensor), str(tmp_path / "out.npy")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("2.0")
    raw = np.load(tmp_path / "out.npy")
    same = np.array_equal(raw, _python_reference(unpacked, rdf, tensor))
    diff = _compare(raw, unpacked, rdf)
    raw_diff = np.abs(raw - _python_reference(unpacked, rdf, tensor)).max()
    print(
        f"torch {done.stdout.strip()}: bit-identical {same} (raw max |diff| {raw_diff:.3g}), "
        f"max |diff| to the test output {diff}"
    )
