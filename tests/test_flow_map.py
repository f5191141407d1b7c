"""The flow map: its MeanFlow target, its sampler steps and its start from a velocity network.

The analytic flow map of a Gaussian posterior (tests/helpers.py) is known in closed form, so its
MeanFlow residual must vanish and its steps must land on the exact ODE solution; the expected
numbers are computed here from the closed form, not by the code under test.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from torch import Tensor

from hazematching.bioimage.reading import load_package
from hazematching.config import FlowMapConfig, NetworkConfig, SamplingConfig
from hazematching.export.package import export_package
from hazematching.export.recipe import default_recipe
from hazematching.model.checkpoint import load_checkpoint
from hazematching.model.network import build_velocity_net, load_widening_output, trace_velocity
from hazematching.model.sampler import EulerSampler, FlowMapNet, gaussian_field
from hazematching.model.trained import load_trained_model
from hazematching.training.flow_map import (
    draw_steps,
    flow_map_loss,
    map_sample,
    mean_flow_target,
)
from hazematching.training.loop import TrainResult, train
from tests.helpers import (
    TINY_NETWORK,
    GaussianFlowMap,
    GaussianPosteriorField,
    reinitialised_velocity_net,
    tiny_train_config,
)

SPREAD = 0.4
NETWORK = NetworkConfig(model_channels=32, channel_mult=(1, 2), attention_downsample=(2,))


def _images(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


TIMES = torch.tensor(
    [[0.0, 1.0], [0.0, 0.5], [0.5, 1.0], [0.2, 0.7], [0.3, 0.3], [0.9, 1.0]], dtype=torch.float64
)


def test_mean_flow_target_vanishes_on_the_exact_map() -> None:
    """u = v + (t - s) du/ds holds for the exact map at every (s, t), steps of length 0 included;
    the velocity field used as a map (u(x, s, t) = v(x, s), Euler's step) violates it."""
    x, hazy = _images(6, 1, 4, 4, seed=0), _images(6, 1, 4, 4, seed=1)
    exact = GaussianFlowMap(SPREAD)
    velocity = GaussianPosteriorField(SPREAD)(TIMES[:, 0], torch.cat([x, hazy], 1))[:, :1]
    output, target = mean_flow_target(exact, x, hazy, TIMES, velocity)
    torch.testing.assert_close(output[:, :1], target, atol=1e-10, rtol=1e-10)

    def euler(times: Tensor, inputs: Tensor) -> Tensor:
        return GaussianPosteriorField(SPREAD)(times[:, 0], inputs)

    output, target = mean_flow_target(euler, x, hazy, TIMES, velocity)
    residual = (output[:, :1] - target).abs().amax(dim=(1, 2, 3))
    assert residual[4] < 1e-12  # a step of length 0 is the velocity itself
    assert residual[[0, 1, 2, 3]].min() > 0.05


def test_flow_map_loss_is_the_head_error_on_the_exact_map() -> None:
    """With the exact map and its own field as teacher only the head's error at s = 0 is left."""
    hazy, noise = _images(6, 1, 4, 4, seed=2), _images(6, 1, 4, 4, seed=3)
    truth = _images(6, 1, 4, 4, seed=4)
    exact, field = GaussianFlowMap(SPREAD), GaussianPosteriorField(SPREAD)
    loss = flow_map_loss(exact, field, hazy, truth, noise, TIMES)
    at_start = TIMES[:, 0] == 0
    head = torch.mean((hazy - truth)[at_start] ** 2)  # x_0 + head = hazy
    torch.testing.assert_close(loss, head, atol=1e-6, rtol=1e-6)


def test_anchored_rows_regress_the_whole_step_onto_the_teachers_sample() -> None:
    """Rows with an endpoint (times [0, 1]) take endpoint - noise as target: the exact sample
    hazy + spread x_0 leaves only the head's error; a wrong one adds its error's weight."""
    hazy, noise = _images(4, 1, 4, 4, seed=2), _images(4, 1, 4, 4, seed=3)
    times = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.2, 0.7], [0.5, 1.0]], dtype=torch.float64)
    exact, field = GaussianFlowMap(SPREAD), GaussianPosteriorField(SPREAD)
    endpoint = torch.full_like(hazy, float("nan"))
    endpoint[:2] = hazy[:2] + SPREAD * noise[:2]
    loss = flow_map_loss(exact, field, hazy, hazy, noise, times, endpoint)
    assert float(loss) < 1e-6
    endpoint[0] += 0.5  # the map's step now misses the anchor by 0.5 in row 0 (weight ~ 1/4)
    loss = flow_map_loss(exact, field, hazy, hazy, noise, times, endpoint)
    torch.testing.assert_close(loss.item(), 0.25 * 0.25 / (0.25 + 1e-3), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_sampler_steps_of_the_exact_map_land_on_the_ode_solution(steps: int) -> None:
    """Any number of flow-map steps reaches x_1 = hazy + spread x_0 exactly; Euler steps of the
    velocity do not (the path is curved)."""
    hazy = _images(2, 1, 8, 8, seed=5).float()
    options = {"steps": steps, "samples": 3, "seed": 2, "batch_size": 2, "size_multiple": 8}
    out = EulerSampler(
        GaussianFlowMap(SPREAD), flow_map=True, head=True, keep_samples=True, **options
    )(hazy)
    for k in range(3):
        noise = gaussian_field(2, k, 0, 0, 8, 8, torch.device("cpu"))[None, None]
        torch.testing.assert_close(out[:, 2 + k : 3 + k], hazy + SPREAD * noise)
    torch.testing.assert_close(out[:, :1], hazy)  # the head's MMSE
    field = GaussianPosteriorField(SPREAD)
    euler = EulerSampler(field, head=True, keep_samples=True, **options)(hazy)
    assert (euler[:, 2:] - out[:, 2:]).abs().max() > 0.05


@pytest.mark.parametrize("steps", [1, 2])
def test_map_sample_is_the_sampler_update(steps: int) -> None:
    hazy, noise = _images(3, 1, 8, 8, seed=6), _images(3, 1, 8, 8, seed=7)
    expected = hazy + SPREAD * noise
    torch.testing.assert_close(map_sample(GaussianFlowMap(SPREAD), noise, hazy, steps), expected)


def _map_of_teacher(head: bool) -> tuple[FlowMapNet, torch.nn.Module]:
    """A flow map loaded with a (re-initialised) velocity network's weights, and that network."""
    velocity = reinitialised_velocity_net(NETWORK, 16, seed=3)
    net = build_velocity_net(NETWORK.model_copy(update={"flow_map": True, "mmse_head": head}), 16)
    load_widening_output(net, velocity.state_dict())
    return net.eval(), velocity


def test_map_starts_as_its_teacher_and_learns_the_step_length() -> None:
    """At the start u(x, s, t) = v(x, s) for every t, the head a copy of the velocity; once the
    step-length embedding is non-zero, t changes the output."""
    net, velocity = _map_of_teacher(head=True)
    assert isinstance(net, FlowMapNet)
    x = _images(2, 2, 16, 16, seed=8).float()
    s = torch.tensor([0.0, 0.5])
    with torch.no_grad():
        expected = velocity(s, x)
        for end in (s, s + 0.25, torch.ones(2)):
            out = net(torch.stack([s, end], 1), x)
            torch.testing.assert_close(out[:, :1], expected)
            torch.testing.assert_close(out[:, 1:2], expected)
        torch.nn.init.normal_(net.span_embed[2].weight, std=0.1)
        moved = net(torch.stack([s, s + 0.25], 1), x) - net(torch.stack([s, s + 0.5], 1), x)
    assert moved.abs().max() > 1e-4


def test_flow_map_trace_generalises_to_other_sizes() -> None:
    net, _ = _map_of_teacher(head=False)
    torch.nn.init.normal_(net.span_embed[2].weight, std=0.1)
    traced = trace_velocity(net, 16)
    x = _images(3, 2, 24, 32, seed=9).float()
    times = torch.tensor([[0.0, 1.0], [0.5, 1.0], [0.2, 0.4]])
    with torch.no_grad():
        torch.testing.assert_close(traced(times, x), net(times, x), atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def map_student(
    sim_dir: Path, trained: TrainResult, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A 2-step flow-map student of the tiny teacher with an MMSE head, 6 steps on 16 pairs."""
    run_dir = tmp_path_factory.mktemp("flow-map") / "student"
    config = tiny_train_config(
        method="flow-map",
        teacher=str(trained.best),
        teacher_steps=2,
        reflow_pairs=16,
        time_grid=2,
        steps=6,
        val_every=3,
        network=TINY_NETWORK.model_copy(update={"mmse_head": True}),
        flow_map=FlowMapConfig(anchor=0.5),
    )
    train(sim_dir, run_dir, config, progress=False)
    return run_dir


def test_map_student_trains_from_its_teacher_exports_and_passes_test_model(
    map_student: Path, trained: TrainResult, tmp_path: Path
) -> None:
    from bioimageio.core import test_model

    learned = load_checkpoint(map_student / "last.pt")
    teacher = load_checkpoint(trained.best)
    assert learned.config.method == "flow-map" and learned.step == 6
    expected = teacher.config.network.model_copy(update={"mmse_head": True, "flow_map": True})
    assert learned.config.network == expected
    assert learned.normalization == teacher.normalization
    assert learned.model["span_embed.2.weight"].abs().max() > 0  # the step length is learned
    assert isinstance(load_trained_model(map_student / "best.pt").velocity, FlowMapNet)
    assert [h["step"] for h in learned.history] == [3, 6]
    out = tmp_path / "map.zip"
    recipe = default_recipe().model_copy(
        update={"sampling": SamplingConfig(samples=2), "test_size": 32}
    )
    export_package(map_student / "best.pt", out, recipe)
    summary = test_model(out)
    assert summary.status == "passed", summary.display()
    settings = load_package(out).config.model_dump()["hazematching"]
    assert settings["evaluations_per_image"] == 4  # 2 samples x 2 steps
    card = zipfile.ZipFile(out).read("README.md").decode()
    assert "The network is a flow map" in card


def test_a_flow_map_network_belongs_to_method_flow_map() -> None:
    with pytest.raises(ValueError, match="only by method 'flow-map'"):
        tiny_train_config(network=TINY_NETWORK.model_copy(update={"flow_map": True}))
    with pytest.raises(ValueError, match="teacher checkpoint is needed"):
        tiny_train_config(method="flow-map")


def test_steps_are_ordered_and_drawn_as_configured() -> None:
    settings = FlowMapConfig()
    times = draw_steps(torch.Generator().manual_seed(0), 20000, settings)
    start, end = times[:, 0], times[:, 1]
    assert bool(((start >= 0) & (start <= end) & (end <= 1)).all())
    assert abs(float((start == 0).float().mean()) - settings.start_zero) < 0.015
    assert abs(float((end == start).float().mean()) - settings.same) < 0.015
    assert abs(float(((end == 1) & (start != end)).float().mean()) - settings.end_one) < 0.015
