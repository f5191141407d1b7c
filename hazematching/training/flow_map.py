"""Flow-map distillation: a few-step student that learns where the teacher's flow goes.

A flow map u(x_s, s, t) (`FlowMapNet`) is the average velocity of the flow over [s, t], so one
update x_t = x_s + (t - s) u lands where the teacher's ODE would, however curved its path. The
MeanFlow identity (Geng et al., 2025) gives its regression target without integrating the ODE:
differentiating (t - s) u(x_s, s, t) = integral_s^t v(x_r, r) dr along the flow with respect to
s gives

    u(x_s, s, t) = v(x_s, s) + (t - s) d/ds u(x_s, s, t),   d/ds = v . grad_x + partial_s,

where the total derivative is one forward-mode product (`torch.func.jvp`) with tangent (v, 1)
and is held fixed (stop-gradient). Here v is the teacher's velocity at x_s on the interpolant
x_s = (1 - s) x_0 + s x_1, so the student distils the teacher's flow rather than the noisy
conditional velocity x_1 - x_0. The student starts as the teacher (its step-length embedding
starts at zero). With an MMSE head, rows at s = 0 also regress x_0 + head onto the clean patch,
as the reflow student's head does.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..errors import HazeMatchingError
from ..fileio import write_json
from ..model.checkpoint import BEST, LAST, Checkpoint, load_checkpoint, save_checkpoint
from ..model.network import OUTPUT_LAYER, build_velocity_net
from ..model.trained import trained_model_from
from .ema import ema_update
from .reflow import PAIRS_FILE, TeacherPairs

_TRAIN_STREAM = 0
ADAPTIVE_C = 1e-3  # offset of the adaptive loss weight (MeanFlow's default)


@dataclass(frozen=True)
class FlowMapSettings:
    """How the flow map is fine-tuned from its teacher.

    Each row's step [s, t] is drawn as: s = 0 with probability `start_zero` (the first step of
    every sample, and the rows the head learns from), else uniform in [0, 1); t = s with
    probability `same` (the teacher's instantaneous velocity), t = 1 with probability
    `end_one` (last steps), else uniform in [s, 1].
    """

    steps: int = 3000
    batch_size: int = 8
    learning_rate: float = 3e-4
    ema_decay: float = 0.995
    val_every: int = 250
    seed: int = 0
    start_zero: float = 0.4
    same: float = 0.2
    end_one: float = 0.3
    anchor: float = 0.0


def draw_steps(generator: torch.Generator, batch: int, settings: FlowMapSettings) -> Tensor:
    """(batch, 2) steps [s, t] with 0 <= s <= t <= 1, drawn as `FlowMapSettings` says."""
    u = torch.rand(batch, 4, generator=generator)
    start = torch.where(u[:, 0] < settings.start_zero, torch.zeros(batch), u[:, 1])
    uniform_end = start + (1.0 - start) * u[:, 3]
    end = torch.where(
        u[:, 2] < settings.same,
        start,
        torch.where(u[:, 2] < settings.same + settings.end_one, torch.ones(batch), uniform_end),
    )
    return torch.stack([start, end], dim=1)


def mean_flow_target(
    net: nn.Module, x: Tensor, hazy: Tensor, times: Tensor, velocity: Tensor
) -> tuple[Tensor, Tensor]:
    """The map's output at (x_s, s, t) (every channel) and the MeanFlow target of its first
    channel, v + (t - s) d/ds u, detached. `times` is (N, 2) holding s and t; `velocity` is the
    flow's velocity at (x_s, s)."""
    end = times[:, 1]

    def call(state: Tensor, start: Tensor) -> Tensor:
        return net(torch.stack([start, end], dim=1), torch.cat([state, hazy], dim=1))

    output, tangent = torch.func.jvp(
        call, (x, times[:, 0]), (velocity, torch.ones_like(times[:, 0]))
    )
    span = (times[:, 1] - times[:, 0])[:, None, None, None]
    return output, (velocity + span * tangent[:, :1]).detach()


def flow_map_loss(
    net: nn.Module,
    teacher: nn.Module,
    hazy: Tensor,
    truth: Tensor,
    noise: Tensor,
    times: Tensor,
    endpoint: Tensor | None = None,
) -> Tensor:
    """MeanFlow regression of the map onto the teacher's flow, plus the head's MSE at s = 0.

    Rows where `endpoint` is finite (the teacher's sample from `noise`, NaN elsewhere) regress
    the step [0, 1] onto endpoint - noise instead.
    """
    start = times[:, 0][:, None, None, None]
    x = (1.0 - start) * noise + start * truth
    with torch.no_grad():
        velocity = teacher(times[:, 0], torch.cat([x, hazy], dim=1))[:, :1]
    output, target = mean_flow_target(net, x, hazy, times, velocity)
    if endpoint is not None:
        target = torch.where(torch.isnan(endpoint), target, endpoint - noise)
    error = torch.mean((output[:, :1] - target) ** 2, dim=(1, 2, 3))
    # MeanFlow's adaptive weight 1 / (error + c), held fixed: a robust loss, since the target
    # moves with the map itself and occasional large errors would otherwise dominate.
    loss = torch.mean(error / (error.detach() + ADAPTIVE_C))
    if output.shape[1] == 1:
        return loss
    at_start = (times[:, 0] == 0).to(output.dtype)
    head_error = torch.mean((noise + output[:, 1:2] - truth) ** 2, dim=(1, 2, 3))
    return loss + torch.sum(head_error * at_start) / torch.clamp(at_start.sum(), min=1.0)


def map_sample(net: nn.Module, noise: Tensor, hazy: Tensor, steps: int) -> Tensor:
    """x_1 from x_0 = noise in `steps` equal flow-map steps (the packaged sampler's update on an
    untiled patch)."""
    x = noise
    with torch.no_grad():
        for step in range(steps):
            s = torch.full([x.shape[0]], step / steps, dtype=x.dtype, device=x.device)
            times = torch.stack([s, s + 1.0 / steps], dim=1)
            x = x + net(times, torch.cat([x, hazy], dim=1))[:, :1] * (1.0 / steps)
    return x


def validation_error(net: nn.Module, pairs: TeacherPairs) -> float:
    """Mean squared distance of the map's 1- and 2-step samples to the teacher's samples from the
    same noise: an exact flow map of the teacher has none."""
    net.eval()
    errors = [
        torch.mean((map_sample(net, pairs.noise, pairs.hazy, steps) - pairs.sample) ** 2).item()
        for steps in (1, 2)
    ]
    net.train()
    return float(np.mean(errors))


def start_from_teacher(teacher: Checkpoint, head: bool) -> tuple[nn.Module, Checkpoint]:
    """A flow map (with or without a head) holding the teacher's weights, and its config.

    The head channel starts as a copy of the velocity channel; the step-length embedding keeps
    its zero last layer, so the map starts as the teacher.
    """
    network = teacher.config.network.model_copy(update={"flow_map": True, "mmse_head": head})
    net = build_velocity_net(network, teacher.config.patch_size)
    own = net.state_dict()
    for key, value in teacher.ema.items():
        if key.startswith(OUTPUT_LAYER) and own[key].shape[0] == 2 * value.shape[0]:
            value = torch.cat([value, value])
        own[key] = value
    net.load_state_dict(own)
    config = teacher.config.model_copy(update={"network": network})
    return net, replace(teacher, config=config)


def distill_flow_map(
    teacher_path: Path,
    pairs_path: Path,
    run_dir: Path,
    settings: FlowMapSettings,
    *,
    head: bool = True,
    progress: bool = True,
) -> Path:
    """Fine-tune a flow map from the teacher checkpoint on the patches of a reflow pair cache
    (`reflow_pairs.pt`: hazy and clean patches, with the teacher's samples for validation);
    writes best.pt (lowest validation error), last.pt (resumable) and history.json to run_dir.
    """
    teacher = load_checkpoint(teacher_path)
    raw = torch.load(pairs_path, map_location="cpu", weights_only=True)
    if "pairs" not in raw:
        raise HazeMatchingError(f"is not a {PAIRS_FILE} cache of teacher pairs", pairs_path)
    pairs = {name: TeacherPairs(**fields) for name, fields in raw["pairs"].items()}
    teacher_net = trained_model_from(teacher, teacher_path).velocity.eval()
    net, start = start_from_teacher(teacher, head)
    config = start.config.model_copy(
        update={
            "method": "reflow",
            "teacher": str(teacher_path),
            "time_grid": 2,
            "steps": settings.steps,
            "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
            "ema_decay": settings.ema_decay,
            "val_every": settings.val_every,
            "seed": settings.seed,
        }
    )
    ema = copy.deepcopy(net).eval()
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    run_dir.mkdir(parents=True, exist_ok=True)
    first, best, history = 0, math.inf, []
    if (run_dir / LAST).is_file():
        previous = load_checkpoint(run_dir / LAST)
        net.load_state_dict(previous.model)
        ema.load_state_dict(previous.ema)
        optimizer.load_state_dict(previous.optimizer)
        first, best, history = previous.step, previous.best_val_loss, list(previous.history)

    def checkpoint(step: int) -> Checkpoint:
        return Checkpoint(
            config=config,
            normalization=teacher.normalization,
            step=step,
            model=net.state_dict(),
            ema=ema.state_dict(),
            optimizer=optimizer.state_dict(),
            best_val_loss=best,
            history=history,
            data=teacher.data,
        )

    if first == 0:  # the teacher itself, stepped as a map: where the fine-tuning starts from
        history.append({"step": 0, "val_loss": validation_error(ema, pairs["val"])})
    net.train()
    for step in tqdm(range(first, settings.steps), desc="flow map", disable=not progress):
        rng = np.random.default_rng([settings.seed, _TRAIN_STREAM, step])
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        hazy, cached, sample, truth = pairs["train"].batch(rng, settings.batch_size)
        noise = torch.randn(truth.shape, generator=generator)
        times = draw_steps(generator, settings.batch_size, settings)
        anchored = torch.rand(settings.batch_size, generator=generator) < settings.anchor
        rows = anchored[:, None, None, None]
        noise = torch.where(rows, cached, noise)
        times = torch.where(anchored[:, None], torch.tensor([0.0, 1.0]), times)
        endpoint = torch.where(rows, sample, torch.full_like(sample, float("nan")))
        loss = flow_map_loss(net, teacher_net, hazy, truth, noise, times, endpoint)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        ema_update(ema, net, settings.ema_decay, step)
        done = step + 1
        if done % settings.val_every == 0 or done == settings.steps:
            error = validation_error(ema, pairs["val"])
            history.append({"step": done, "train_loss": loss.item(), "val_loss": error})
            if error < best:
                best = error
                save_checkpoint(run_dir / BEST, replace(checkpoint(done), optimizer={}))
            save_checkpoint(run_dir / LAST, checkpoint(done))
            write_json(run_dir / "history.json", history)
    return run_dir / BEST
