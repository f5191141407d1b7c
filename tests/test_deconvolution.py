"""Richardson-Lucy baseline: deconvolution with a known PSF, iteration choice, model files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from hazematching.config import SimulationConfig
from hazematching.data.simulate import PSF_FILE, effective_widefield_psf
from hazematching.data.tiff import read_pair, write_tiff
from hazematching.errors import HazeMatchingError
from hazematching.metrics.distortion import psnr
from hazematching.model.richardson_lucy import (
    MODEL_FILE,
    RichardsonLucy,
    deconvolve,
    load_richardson_lucy,
)
from hazematching.training.richardson_lucy import fit_richardson_lucy, read_psf
from tests.helpers import failed_reader_rules


def _gaussian_psf(size: int = 15, sigma: float = 2.0) -> np.ndarray:
    r = np.arange(size) - size // 2
    psf = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return (psf / psf.sum()).astype(np.float32)


def test_deconvolution_sharpens_a_blurred_object() -> None:
    rng = np.random.default_rng(0)
    obj = np.zeros((64, 64), np.float32)
    obj[rng.integers(8, 56, 12), rng.integers(8, 56, 12)] = 100.0
    psf = _gaussian_psf()
    module = torch.jit.script(RichardsonLucy(torch.from_numpy(psf), 30))
    otf = module.transfer(64, 64)
    image = torch.fft.irfft2(torch.fft.rfft2(torch.from_numpy(obj)) * otf, s=[64, 64]).numpy()
    restored = deconvolve(module, image)
    assert psnr(obj, restored) > psnr(obj, image) + 1.0
    assert restored.max() > 3 * image.max()  # the points are concentrated again
    assert restored.sum() == pytest.approx(image.sum(), rel=1e-3)  # RL conserves the flux
    estimates = module.run(torch.from_numpy(image)[None, None], 30, True)
    assert len(estimates) == 30 and torch.equal(estimates[-1][0, 0], torch.from_numpy(restored))
    out = module(torch.from_numpy(image)[None, None])
    assert out.shape == (1, 2, 64, 64) and torch.count_nonzero(out[:, 1]) == 0


def test_transfer_of_a_delta_is_flat_and_the_psf_is_centred() -> None:
    delta = np.zeros((9, 9), np.float32)
    delta[4, 4] = 1.0
    otf = RichardsonLucy(torch.from_numpy(delta), 1).transfer(16, 20)
    torch.testing.assert_close(otf, torch.ones_like(otf))


def test_simulator_psf_sums_to_one_and_is_centred() -> None:
    config = SimulationConfig(size=48, pairs=4)
    psf = effective_widefield_psf(config)
    assert psf.shape == (48, 48) and psf.sum() == pytest.approx(1.0, rel=1e-5)
    assert np.unravel_index(np.argmax(psf), psf.shape) == (24, 24)


def test_fit_picks_the_best_iteration_and_round_trips(sim_dir: Path, tmp_path: Path) -> None:
    model = fit_richardson_lucy(
        sim_dir / PSF_FILE, sim_dir, tmp_path / "rl", max_iterations=12, progress=False
    )
    assert len(model.curve) == 12 and model.curve[model.iterations - 1] == max(model.curve)
    record = json.loads((tmp_path / "rl" / "richardson_lucy.json").read_text())
    assert record["iterations"] == model.iterations and record["data"].endswith("val")
    loaded = load_richardson_lucy(tmp_path / "rl")
    assert loaded.iterations == model.iterations and np.array_equal(loaded.psf, model.psf)


def test_bad_psf_and_model_files(tmp_path: Path) -> None:
    write_tiff(tmp_path / "neg.tif", -np.ones((5, 5), np.float32), "YX")
    with pytest.raises(HazeMatchingError, match="non-negative"):
        read_psf(tmp_path / "neg.tif")
    tifffile.imwrite(tmp_path / "stack.tif", np.ones((2, 5, 5), np.float32))
    with pytest.raises(HazeMatchingError, match="single 2D"):
        read_psf(tmp_path / "stack.tif")
    (tmp_path / MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(HazeMatchingError, match="not a Richardson-Lucy model"):
        load_richardson_lucy(tmp_path / MODEL_FILE)


def test_export_passes_bioimageio_and_matches_the_library(sim_dir: Path, tmp_path: Path) -> None:
    from bioimageio.core import test_model

    from hazematching.bioimage.reading import load_package
    from hazematching.export.deconvolution_package import export_richardson_lucy
    from hazematching.export.recipe import default_recipe
    from hazematching.inference.package import run_package

    fit_richardson_lucy(
        sim_dir / PSF_FILE, sim_dir, tmp_path / "rl", max_iterations=6, progress=False
    )
    card = default_recipe().card.model_copy(update={"metrics": "Measured on our own pairs."})
    recipe = default_recipe().model_copy(update={"test_size": 32, "card": card})
    result = export_richardson_lucy(tmp_path / "rl", tmp_path / "rl.zip", recipe)
    assert result.status == "passed" and test_model(result.path).status == "passed"
    assert failed_reader_rules(result.path) == []
    with zipfile.ZipFile(result.path) as archive:
        assert "Measured on our own pairs." in archive.read("README.md").decode()
    model = load_richardson_lucy(tmp_path / "rl")
    hazy = read_pair(sorted((sim_dir / "test").glob("*.tif"))[0])[0]
    out = run_package(load_package(result.path), hazy, "cpu", lambda: None)
    np.testing.assert_allclose(out[0, 0], deconvolve(model.module(), hazy[0]), rtol=1e-4, atol=1e-3)
    assert np.count_nonzero(out[0, 1]) == 0


def test_cli_export_lists_maintainers(sim_dir: Path, tmp_path: Path) -> None:
    from hazematching.bioimage.reading import load_package
    from tests.helpers import invoke, run

    fit_richardson_lucy(
        sim_dir / PSF_FILE, sim_dir, tmp_path / "rl", max_iterations=2, progress=False
    )
    args = ["export", tmp_path / "rl", "--out", tmp_path / "rl.zip", "--test-size", "32"]
    done = run(*args, "--maintainer", "octocat", "--maintainer", "hubot")
    assert done.returncode == 0, done.stderr
    users = [str(m.github_user) for m in load_package(tmp_path / "rl.zip").maintainers]
    assert users == ["octocat", "hubot"]
    done = invoke(*args, "--maintainer", "not a user")
    assert done.exit_code == 1 and "github_user" in done.output
