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

MeanFlow's target bootstraps long steps from short ones and learns them slowly; anchored rows
(`FlowMapConfig.anchor`) give the whole step [0, 1] its exact target from the cached teacher
pairs a reflow student trains on: the teacher's own sample from that noise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..config import FlowMapConfig
from .reflow import TeacherPairs

ADAPTIVE_C = 1e-3  # offset of the adaptive loss weight (MeanFlow's default)


def draw_steps(generator: torch.Generator, batch: int, settings: FlowMapConfig) -> Tensor:
    """(batch, 2) steps [s, t] with 0 <= s <= t <= 1, drawn as `FlowMapConfig` says."""
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


def flow_map_batch(
    pairs: TeacherPairs,
    rng: np.random.Generator,
    generator: torch.Generator,
    size: int,
    settings: FlowMapConfig,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(hazy, truth, noise, times, endpoint) of one training batch of `flow_map_loss`.

    Patches come from the teacher pairs under random flips/rotations with fresh noise and
    drawn steps; anchored rows (`settings.anchor`) take the pair's cached noise, the step [0, 1]
    and the teacher's sample as endpoint (NaN in the other rows).
    """
    hazy, cached, sample, truth = pairs.batch(rng, size)
    noise = torch.randn(truth.shape, generator=generator)
    times = draw_steps(generator, size, settings)
    anchored = torch.rand(size, generator=generator) < settings.anchor
    rows = anchored[:, None, None, None]
    noise = torch.where(rows, cached, noise)
    times = torch.where(anchored[:, None], torch.tensor([0.0, 1.0]), times)
    endpoint = torch.where(rows, sample, torch.full_like(sample, float("nan")))
    return hazy, truth, noise, times, endpoint
