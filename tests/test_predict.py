"""Prediction from a checkpoint: files with axes, the scripted sampler's numbers, errors."""

from __future__ import annotations

from pathlib import Path

import imageio.v3
import numpy as np
import pytest
import tifffile
import torch

from hazematching.config import SamplingConfig
from hazematching.data.tiff import read_single
from hazematching.errors import HazeMatchingError
from hazematching.inference.bundled import DEFAULT_MODEL, bundled_model
from hazematching.inference.predict import predict, split_model_argument
from hazematching.inference.sampling import build_sampler
from hazematching.model.trained import load_trained_model
from hazematching.training.loop import TrainResult

SAMPLING = SamplingConfig(samples=3, steps=4, seed=2, batch_size=2)


@pytest.fixture(scope="module")
def hazy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2D single-channel input of a size that is not a multiple of the network's."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    image = (rng.random((40, 52)) * 100).astype(np.float32)
    tifffile.imwrite(folder / "cell.tif", image)
    return folder / "cell.tif"


def test_prediction_file_and_numbers(trained: TrainResult, hazy: Path, tmp_path: Path) -> None:
    (written,) = predict(trained.best, [hazy], tmp_path, SAMPLING, progress=False)
    with tifffile.TiffFile(written) as tif:
        assert tif.series[0].axes == "CYX"
        assert tif.imagej_metadata["Labels"] == ["mmse", "std"]
        data = tif.series[0].asarray()
    assert data.shape == (2, 40, 52) and data.dtype == np.float32
    assert (data[1] >= 0).all() and data[1].max() > 0

    # the file holds the scripted sampler's output mapped back to target intensities
    model = load_trained_model(trained.best)
    sampler = build_sampler(model, SAMPLING, torch.device("cpu"))
    plane = read_single(hazy)[0]
    norm = model.normalization.intensity_map(plane)
    x = torch.from_numpy(norm.normalize_input(plane))[None, None]
    with torch.no_grad():
        raw = sampler(x)[0].numpy()
    np.testing.assert_allclose(data[0], norm.denormalize_target(raw[0]), rtol=1e-6)
    np.testing.assert_allclose(data[1], norm.denormalize_target(raw[1], is_std=True), rtol=1e-6)
    assert (tmp_path / "predict.json").is_file()
    preview = imageio.v3.imread(tmp_path / "cell.png")  # input | mmse | std, with titles
    assert preview.ndim == 3 and preview.shape[1] > 2 * preview.shape[0]


def test_same_seed_same_bits_other_seed_differs(
    trained: TrainResult, hazy: Path, tmp_path: Path
) -> None:
    a = tifffile.imread(predict(trained.best, [hazy], tmp_path / "a", SAMPLING, progress=False)[0])
    b = tifffile.imread(predict(trained.best, [hazy], tmp_path / "b", SAMPLING, progress=False)[0])
    other = SAMPLING.model_copy(update={"seed": 3})
    c = tifffile.imread(predict(trained.best, [hazy], tmp_path / "c", other, progress=False)[0])
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_stacks_and_samples(trained: TrainResult, tmp_path: Path) -> None:
    stack = np.random.default_rng(1).random((3, 32, 32)).astype(np.float32)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    keep = SAMPLING.model_copy(update={"keep_samples": True})
    (written,) = predict(
        trained.last.parent, [tmp_path / "stack.tif"], tmp_path / "out", keep, progress=False
    )
    with tifffile.TiffFile(written) as tif:
        assert tif.series[0].axes == "ZCYX"
        assert tif.imagej_metadata["Labels"][:5] == [
            "mmse",
            "std",
            "sample_0",
            "sample_1",
            "sample_2",
        ]
        data = tif.series[0].asarray()
    assert data.shape == (3, 5, 32, 32)
    np.testing.assert_allclose(data[:, 0], data[:, 2:].mean(axis=1), rtol=1e-4, atol=1e-3)


def test_bad_input_writes_nothing(trained: TrainResult, hazy: Path, tmp_path: Path) -> None:
    bad = tmp_path / "nan.tif"
    tifffile.imwrite(bad, np.full((32, 32), np.nan, np.float32))
    out = tmp_path / "out"
    with pytest.raises(HazeMatchingError, match=r"nan\.tif: contains NaN"):
        predict(trained.best, [hazy, bad], out, SAMPLING, progress=False)
    assert not out.exists()
    with pytest.raises(HazeMatchingError, match="model not found"):
        predict(tmp_path / "none.pt", [hazy], out, SAMPLING, progress=False)
    with pytest.raises(HazeMatchingError, match="share a file name"):
        predict(trained.best, [hazy, hazy], out, SAMPLING, progress=False)


def test_model_argument_is_optional(hazy: Path) -> None:
    model, images = split_model_argument([Path("run/best.pt"), hazy])
    assert model == Path("run/best.pt") and images == [hazy]
    model, images = split_model_argument([hazy, hazy.with_suffix(".TIFF")])
    assert model == bundled_model() and model.name == DEFAULT_MODEL and len(images) == 2
    with pytest.raises(HazeMatchingError, match="no input images"):
        split_model_argument([])
