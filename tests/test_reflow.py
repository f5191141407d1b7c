"""Reflow distillation: teacher integration, pair augmentation, the method and its cache."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from hazematching.bioimage.reading import load_package
from hazematching.config import SamplingConfig, TrainConfig
from hazematching.errors import HazeMatchingError
from hazematching.export.package import export_package
from hazematching.export.recipe import default_recipe
from hazematching.inference.sampling import method_sampling
from hazematching.model.calibration import Calibration
from hazematching.model.checkpoint import load_checkpoint, save_checkpoint
from hazematching.model.network import build_velocity_net, load_widening_output
from hazematching.training.flow import GuidedFlowMatching
from hazematching.training.loop import TrainResult, train
from hazematching.training.reflow import PAIRS_FILE, TeacherPairs, integrate_teacher
from tests.helpers import (
    TINY_NETWORK,
    LinearField,
    TimeGuideField,
    invoke,
    reinitialised_velocity_net,
    tiny_train_config,
)


@pytest.mark.parametrize("steps", [1, 3, 20])
def test_teacher_integration_is_euler_with_a_closed_form(steps: int) -> None:
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    hazy = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    linear = integrate_teacher(LinearField(0.5), hazy, noise, steps)
    torch.testing.assert_close(linear, noise * (1 + 0.5 / steps) ** steps)
    timed = integrate_teacher(TimeGuideField(), hazy, noise, steps)
    torch.testing.assert_close(timed, noise + hazy * (steps - 1) / steps)


def test_pair_batches_transform_hazy_noise_sample_and_target_together() -> None:
    generator = torch.Generator().manual_seed(0)
    hazy = torch.randn(4, 1, 6, 6, generator=generator)
    noise = torch.randn(4, 1, 6, 6, generator=generator)
    pairs = TeacherPairs(hazy, noise, hazy + 2 * noise, hazy - noise)
    h, n, s, t = pairs.batch(np.random.default_rng(0), 64)
    torch.testing.assert_close(s, h + 2 * n)
    torch.testing.assert_close(t, h - n)
    originals = {tuple(p.flatten().tolist()) for p in hazy}
    assert sum(tuple(p.flatten().tolist()) not in originals for p in h) > 16  # some transformed


@pytest.fixture(scope="module")
def student(sim_dir: Path, trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step reflow student of the tiny teacher, 6 steps on 24 teacher pairs."""
    run_dir = tmp_path_factory.mktemp("reflow") / "student"
    config = tiny_train_config(
        method="reflow",
        teacher=str(trained.best),
        teacher_steps=3,
        reflow_pairs=24,
        time_grid=2,
        steps=6,
        val_every=3,
    )
    train(sim_dir, run_dir, config, progress=False)
    return run_dir


def test_a_calibrated_model_draws_the_samples_it_was_calibrated_with() -> None:
    config = tiny_train_config(method="reflow", teacher="t.pt", time_grid=2)
    calibration = Calibration(
        std_scale=2.0, std_offset=0.0, error_before=0.5, error_after=0.1, pixels=4, bins=2,
        samples=4, steps=1,
    )  # fmt: skip
    chosen = method_sampling(config, SamplingConfig(), calibration)
    assert (chosen.samples, chosen.steps) == (4, 1)
    asked = method_sampling(config, SamplingConfig(samples=8), calibration)
    assert (asked.samples, asked.steps) == (8, 1)  # asked for explicitly: as asked
    assert method_sampling(config, SamplingConfig()).samples == SamplingConfig().samples


def test_student_takes_the_teacher_architecture_normalisation_and_default_steps(
    trained: TrainResult, student: Path
) -> None:
    teacher = load_checkpoint(trained.best)
    learned = load_checkpoint(student / "last.pt")
    assert learned.config.method == "reflow"
    assert learned.config.network == teacher.config.network
    assert learned.normalization == teacher.normalization
    assert learned.step == 6
    assert method_sampling(learned.config, SamplingConfig()).steps == 2
    assert method_sampling(teacher.config, SamplingConfig()).steps == teacher.config.time_grid
    # the student started from the teacher's weights and moved away from them
    moved = [not torch.equal(learned.model[k], teacher.ema[k]) for k in teacher.ema]
    assert any(moved)
    raw = torch.load(student / PAIRS_FILE, weights_only=True)
    assert raw["pairs"]["train"]["sample"].shape == (24, 1, 32, 32)
    assert raw["pairs"]["val"]["sample"].shape == (4, 1, 32, 32)


class _FixedOutput(nn.Module):
    """A 'network' returning the velocity x_1 - x_0 exactly and a given head channel."""

    def __init__(self, start: Tensor, target: Tensor, head: Tensor) -> None:
        super().__init__()
        self.velocity, self.head = target - start, head

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """(exact velocity, head), whatever the input."""
        return torch.cat([self.velocity, self.head], dim=1)


def test_head_loss_is_the_mse_of_x0_plus_head_at_t_zero_only() -> None:
    generator = torch.Generator().manual_seed(0)
    hazy, noise, sample, truth, head = (
        torch.randn(4, 1, 6, 6, generator=generator) for _ in range(5)
    )
    objective = GuidedFlowMatching()
    t = torch.tensor([0.0, 0.5, 0.0, 0.5])
    loss = objective.loss(_FixedOutput(noise, sample, head), hazy, sample, noise, t, truth)
    at_start = [0, 2]  # the velocity is exact: only the head's error at t = 0 is left
    expected = ((noise + head - truth)[at_start] ** 2).mean()
    torch.testing.assert_close(loss, expected)
    exact = _FixedOutput(noise, sample, truth - noise)  # the minimiser: x_0 + head = truth
    assert float(objective.loss(exact, hazy, sample, noise, t, truth)) == pytest.approx(
        0, abs=1e-12
    )
    # no row at t = 0: no head term; without `truth` the head regresses the target
    late = torch.full((4,), 0.5)
    assert float(objective.loss(_FixedOutput(noise, sample, head), hazy, sample, noise, late)) == 0
    own = objective.loss(_FixedOutput(noise, sample, head), hazy, sample, noise, t)
    torch.testing.assert_close(own, ((noise + head - sample)[at_start] ** 2).mean())


def test_head_starts_as_the_teacher_velocity() -> None:
    """Widening copies the velocity channel into the head; everything else loads unchanged."""
    plain = reinitialised_velocity_net(TINY_NETWORK, 16, seed=0)
    headed = build_velocity_net(TINY_NETWORK.model_copy(update={"mmse_head": True}), 16)
    load_widening_output(headed, plain.state_dict())
    x = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.0, 0.5])
    with torch.no_grad():
        out = headed.eval()(t, x)
        torch.testing.assert_close(out[:, :1], plain(t, x))
        torch.testing.assert_close(out[:, 1:], plain(t, x))
    with pytest.raises(RuntimeError):  # a head cannot be narrowed away
        load_widening_output(plain, headed.state_dict())


@pytest.fixture(scope="module")
def head_student(
    sim_dir: Path, trained: TrainResult, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A 1-step reflow student of the tiny teacher with an MMSE head, 6 steps on 16 pairs."""
    run_dir = tmp_path_factory.mktemp("reflow-head") / "student"
    config = tiny_train_config(
        method="reflow",
        teacher=str(trained.best),
        teacher_steps=2,
        reflow_pairs=16,
        time_grid=1,
        steps=6,
        val_every=3,
        network=TINY_NETWORK.model_copy(update={"mmse_head": True}),
    )
    train(sim_dir, run_dir, config, progress=False)
    return run_dir


def test_head_student_trains_exports_and_passes_test_model(
    head_student: Path, trained: TrainResult, tmp_path: Path
) -> None:
    from bioimageio.core import test_model

    learned = load_checkpoint(head_student / "last.pt")
    assert learned.config.network.mmse_head
    teacher = load_checkpoint(trained.best)
    assert learned.config.network.model_copy(update={"mmse_head": False}) == teacher.config.network
    assert learned.model["unet.out.2.weight"].shape[0] == 2
    out = tmp_path / "head.zip"
    recipe = default_recipe().model_copy(
        update={"sampling": SamplingConfig(samples=3), "test_size": 32}
    )
    export_package(head_student / "best.pt", out, recipe)
    summary = test_model(out)
    assert summary.status == "passed", summary.display()
    settings = load_package(out).config.model_dump()["hazematching"]
    assert settings["evaluations_per_image"] == 3  # 3 samples x 1 step, the head costs nothing
    card = zipfile.ZipFile(out).read("README.md").decode()
    assert "`mmse` is the mean of the MMSE head's estimates" in card


def test_head_needs_a_noise_start() -> None:
    with pytest.raises(ValueError, match="only hazematching and reflow"):
        tiny_train_config(
            method="unet", network=TINY_NETWORK.model_copy(update={"mmse_head": True})
        )


def test_resumed_student_reuses_its_pairs_and_refuses_a_foreign_cache(
    sim_dir: Path, trained: TrainResult, student: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "student"
    run_dir.mkdir()
    for name in ("last.pt", "best.pt", PAIRS_FILE, "config.json"):
        (run_dir / name).write_bytes((student / name).read_bytes())
    cache = (run_dir / PAIRS_FILE).stat().st_mtime_ns
    more = TrainConfig(steps=8, device="cpu")
    result = train(sim_dir, run_dir, more, resume=True, progress=False)
    assert result.step == 8
    assert (run_dir / PAIRS_FILE).stat().st_mtime_ns == cache  # not drawn again

    raw = torch.load(run_dir / PAIRS_FILE, weights_only=True)
    raw["key"]["teacher_steps"] = 99
    torch.save(raw, run_dir / PAIRS_FILE)
    with pytest.raises(HazeMatchingError, match="reflow cache of another teacher"):
        train(sim_dir, run_dir, TrainConfig(steps=10, device="cpu"), resume=True, progress=False)


def test_reflow_needs_a_hazematching_teacher(
    sim_dir: Path, trained: TrainResult, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="teacher checkpoint is needed"):
        TrainConfig(method="reflow")
    with pytest.raises(ValueError, match="teacher checkpoint is needed"):
        TrainConfig(method="hazematching", teacher="x.pt")
    unet = load_checkpoint(trained.best)
    unet.config = unet.config.model_copy(update={"method": "unet"})
    save_checkpoint(tmp_path / "unet.pt", unet)
    done = invoke(
        "train", sim_dir, "--out", tmp_path / "student", "--method", "reflow",
        "--teacher", tmp_path / "unet.pt", "--steps", "2", "--no-progress",
    )  # fmt: skip
    assert done.exit_code == 1
    assert "unet.pt: a reflow teacher must be a HazeMatching model, not 'unet'" in done.output
    assert not (tmp_path / "student").exists()
    done = invoke(
        "train", sim_dir, "--out", tmp_path / "student", "--method", "reflow", "--steps", "2",
    )  # fmt: skip
    assert done.exit_code == 1
    assert "teacher checkpoint is needed" in done.output


def test_commands_sample_a_student_with_its_own_steps(
    sim_dir: Path, student: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "student.pt"
    checkpoint.write_bytes((student / "best.pt").read_bytes())
    image = sorted((sim_dir / "test").glob("*.tif"))[0]

    def predicted_steps(out: str) -> int:
        done = invoke("predict", checkpoint, image, "--out", tmp_path / out, "--samples", "2",
                      "--channel", "1", "--no-progress")  # fmt: skip
        assert done.exit_code == 0, done.output
        assert "warning" not in done.output  # uncalibrated, or sampled as calibrated
        return json.loads((tmp_path / out / "predict.json").read_text())["sampling"]["steps"]

    assert predicted_steps("before") == 2  # its time grid
    done = invoke("calibrate", checkpoint, sim_dir, "--samples", "2", "--steps", "1",
                  "--out", tmp_path / "cal", "--bins", "4", "--no-progress")  # fmt: skip
    assert done.exit_code == 0, done.output
    fitted = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert fitted["sampling"]["steps"] == fitted["calibration"]["steps"] == 1
    assert predicted_steps("after") == 1  # the setting its std was calibrated at
