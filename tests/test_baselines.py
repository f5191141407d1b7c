"""The learned baselines (InDI, MSE U-Net): their objective, sampling and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import Tensor

from hazematching.config import SamplingConfig
from hazematching.data.tiff import read_pair
from hazematching.export.package import export_package
from hazematching.export.recipe import default_recipe
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler
from hazematching.model.trained import load_trained_model
from hazematching.training.flow import GuidedFlowMatching
from hazematching.training.loop import TrainResult, train
from tests.helpers import LinearField, RecordingField, failed_reader_rules, tiny_train_config


@pytest.fixture(scope="module")
def unet_run(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    run = tmp_path_factory.mktemp("unet") / "run"
    return train(
        sim_dir,
        run,
        tiny_train_config(method="unet", steps=40, learning_rate=2e-3, val_every=20),
        progress=False,
    )


@pytest.fixture(scope="module")
def indi_run(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    run = tmp_path_factory.mktemp("indi") / "run"
    return train(sim_dir, run, tiny_train_config(method="indi", indi_noise=0.2), progress=False)


def _hazy(sim_dir: Path) -> np.ndarray:
    return read_pair(next((sim_dir / "test").glob("*.tif")))[0][0]


def _objective(
    start_input: float, start_noise: float, t: Tensor
) -> tuple[Tensor, RecordingField, tuple[Tensor, Tensor, Tensor]]:
    """The loss under v = 0.5 x_t, the field that saw the network input, and (hazy, target, noise).

    The velocity is half the state channel, so the loss depends on the x_t the objective built.
    """
    hazy, target, noise = torch.randn(3, 2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    field = RecordingField(LinearField(0.5))
    loss = GuidedFlowMatching(start_input=start_input, start_noise=start_noise).loss(
        field, hazy, target, noise, t
    )
    return loss, field, (hazy, target, noise)


def test_unet_objective_is_mse_of_the_residual() -> None:
    """At t = 0 from the hazy start the network sees [hazy, hazy] and regresses target - hazy."""
    t = torch.zeros(2)
    loss, field, (hazy, target, _) = _objective(1.0, 0.0, t)
    [(seen_t, seen_x)] = field.calls
    assert torch.equal(seen_t, t)
    torch.testing.assert_close(seen_x, torch.cat([hazy, hazy], dim=1))
    torch.testing.assert_close(loss, torch.mean((0.5 * hazy - (target - hazy)) ** 2))


def test_indi_objective_starts_from_noisy_input() -> None:
    """x_t = (1 - t)(hazy + 0.3 noise) + t target, next to hazy; u_t = target - start."""
    t = torch.tensor([0.25, 0.5])
    loss, field, (hazy, target, noise) = _objective(1.0, 0.3, t)
    start = hazy + 0.3 * noise
    x_t = (1 - t)[:, None, None, None] * start + t[:, None, None, None] * target
    [(seen_t, seen_x)] = field.calls
    assert torch.equal(seen_t, t)
    torch.testing.assert_close(seen_x, torch.cat([x_t, hazy], dim=1))
    torch.testing.assert_close(loss, torch.mean((0.5 * x_t - (target - start)) ** 2))


def test_unet_is_a_point_predictor(unet_run: TrainResult, sim_dir: Path) -> None:
    model = load_trained_model(unet_run.best)
    assert model.config.method == "unet" and model.config.times == 1
    hazy = _hazy(sim_dir)
    # one step and one sample whatever is asked: the network was trained at t = 0 only
    sampler = build_sampler(model, SamplingConfig(samples=4, steps=5), torch.device("cpu"))
    assert sampler.steps == 1 and sampler.samples == 1
    result = predict_planes(model, sampler, hazy[None])
    assert np.count_nonzero(result.std) == 0
    assert np.isfinite(result.mmse).all() and not np.allclose(result.mmse, result.mmse.mean())
    # the trained residual reaches the output: the estimate is not the (normalised) start
    intensities = model.normalization.intensity_map(hazy)
    start = torch.from_numpy(intensities.normalize_input(hazy))[None, None]
    with torch.no_grad():
        estimate = sampler(start)[:, 0:1]
    assert (estimate - start).abs().mean() > 1e-3


def test_indi_one_and_many_steps(indi_run: TrainResult, sim_dir: Path) -> None:
    model = load_trained_model(indi_run.best)
    hazy = _hazy(sim_dir)[None]
    cpu = torch.device("cpu")
    one = predict_planes(model, build_sampler(model, SamplingConfig(samples=3, steps=1), cpu), hazy)
    many = predict_planes(
        model, build_sampler(model, SamplingConfig(samples=3, steps=4), cpu), hazy
    )
    assert not np.allclose(one.mmse, many.mmse)
    assert (one.std > 0).all() and (many.std > 0).all()  # the start noise makes samples differ


def test_unet_exports_and_passes(unet_run: TrainResult, tmp_path: Path) -> None:
    recipe = default_recipe().model_copy(update={"test_size": 32})
    result = export_package(unet_run.best, tmp_path / "unet.zip", recipe)
    assert result.status == "passed" and failed_reader_rules(result.path) == []
    import zipfile

    with zipfile.ZipFile(result.path) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        card = archive.read("README.md").decode()
    kwargs = rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]
    assert (kwargs["steps"], kwargs["samples"], kwargs["start_input"], kwargs["start_noise"]) == (
        1,
        1,
        1.0,
        0.0,
    )
    assert "point predictor" in card
    assert rdf["config"]["bioimageio"]["nickname"] == "hazematching-dehazing-unet"
