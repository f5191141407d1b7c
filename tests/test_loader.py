"""The one model loader: what kind a path is, and one refusal per kind and use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hazematching.errors import HazeMatchingError
from hazematching.inference.bundled import bundled_model
from hazematching.inference.loader import REFUSALS, locate_model, model_file, open_model
from hazematching.model.richardson_lucy import (
    MODEL_FILE,
    RichardsonLucyModel,
    save_richardson_lucy,
)
from hazematching.training.loop import TrainResult
from tests.helpers import invoke


@pytest.fixture(scope="module")
def rl_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Richardson-Lucy model file with a small flat PSF, in a folder of its own."""
    folder = tmp_path_factory.mktemp("rl")
    psf = np.full((3, 3), 1 / 9, dtype=np.float32)
    save_richardson_lucy(folder / MODEL_FILE, RichardsonLucyModel(psf, 2, "flat", [1.0, 2.0]))
    return folder


def test_each_kind_is_recognised(trained: TrainResult, rl_folder: Path) -> None:
    run_dir = trained.best.parent
    checkpoint = locate_model(run_dir)
    assert (checkpoint.kind, checkpoint.file) == ("checkpoint", trained.best)
    assert locate_model(trained.last).file == trained.last
    package = bundled_model()
    assert locate_model(package).kind == "package"
    assert locate_model(rl_folder).kind == "richardson-lucy"
    assert locate_model(rl_folder / MODEL_FILE).file == (rl_folder / MODEL_FILE).resolve()
    # reports name run folders or files: both stand for the same model file
    assert model_file(run_dir) == model_file(trained.best) == trained.best.resolve()


def test_missing_and_empty_paths(tmp_path: Path) -> None:
    with pytest.raises(HazeMatchingError, match=r"none\.pt: model not found"):
        locate_model(tmp_path / "none.pt")
    with pytest.raises(HazeMatchingError, match=r"best\.pt: checkpoint not found"):
        locate_model(tmp_path)  # a folder with neither best.pt, rdf.yaml nor an RL model


@pytest.mark.parametrize(("kind", "use"), sorted(REFUSALS))
def test_every_refusal_is_one_message(
    trained: TrainResult, rl_folder: Path, kind: str, use: str
) -> None:
    path = {"package": bundled_model(), "richardson-lucy": rl_folder}[kind]
    as_use = "evaluate" if use == "sampling options" else use
    with pytest.raises(HazeMatchingError) as caught:
        open_model(path, as_use, sampling=use == "sampling options")
    assert str(caught.value) == f"{path}: {' '.join(REFUSALS[(kind, use)].split())}"
    assert open_model(trained.best, as_use, sampling=True).kind == "checkpoint"


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (("predict", "{rl}", "{tif}", "--out", "{tmp}/o"), ("richardson-lucy", "predict")),
        (("calibrate", "{pkg}", "{tmp}", "--out", "{tmp}/o"), ("package", "calibrate")),
        (("export", "{pkg}", "--out", "{tmp}/o.zip"), ("package", "export")),
        (
            ("export", "{rl}", "--out", "{tmp}/o.zip", "--samples", "2"),
            ("richardson-lucy", "sampling options"),
        ),
        (
            ("evaluate", "{pkg}", "{tmp}", "--out", "{tmp}/o", "--steps", "2"),
            ("package", "sampling options"),
        ),
        (
            ("predict", "{pkg}", "{tif}", "--out", "{tmp}/o", "--samples", "2"),
            ("package", "sampling options"),
        ),
    ],
)
def test_commands_give_the_loaders_refusal(
    rl_folder: Path, tmp_path: Path, args: tuple[str, ...], refusal: tuple[str, str]
) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "x.tif", np.ones((16, 16), np.float32))
    values = {"rl": rl_folder, "pkg": bundled_model(), "tif": tmp_path / "x.tif", "tmp": tmp_path}
    done = invoke(*(a.format(**values) for a in args))
    assert done.exit_code == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {args[1].format(**values)}: {' '.join(REFUSALS[refusal].split())}"]
    assert done.stderr.strip().splitlines()[-1] == errors[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.zip").exists()


def test_loading_leaves_the_global_generator_alone(trained: TrainResult) -> None:
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    open_model(trained.best, "predict")
    assert torch.equal(torch.rand(2), expected)
