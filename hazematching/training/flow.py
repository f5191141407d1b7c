"""The guided conditional flow matching objective (eq. 11 and 15, Algorithm 1 of the paper).

x_t = (1 - t) x_0 + t x_1 interpolates from the start x_0 to the clean target x_1 (torchcfm's
`ConditionalFlowMatcher` with sigma = 0); the network sees [x_t, hazy] and regresses the target
velocity x_1 - x_0. For HazeMatching x_0 is Gaussian noise; the baselines start from the hazy
image (see `TrainConfig`). Times are drawn from the grid {0, 1/T, ..., (T-1)/T}: exactly the
times at which the Euler sampler with T steps evaluates the network. A network with an MMSE head
adds the head's regression at t = 0 (`GuidedFlowMatching.loss`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher


def draw_times(generator: torch.Generator, batch: int, grid: int) -> Tensor:
    """`batch` times drawn uniformly from {0, 1/grid, ..., (grid-1)/grid} (float32, on CPU)."""
    index = torch.randint(0, grid, (batch,), generator=generator)
    return index.to(torch.float32) / grid


class GuidedFlowMatching:
    """Computes the loss of eq. 15 for a batch of (hazy, target) patches.

    The start state is x_0 = start_input * hazy + start_noise * noise: (0, 1) is the paper's
    method, (1, sigma) InDI, (1, 0) a residual U-Net.
    """

    def __init__(self, start_input: float = 0.0, start_noise: float = 1.0) -> None:
        self.matcher = ConditionalFlowMatcher(sigma=0.0)
        self.start_input = start_input
        self.start_noise = start_noise

    def loss(
        self,
        net: nn.Module,
        hazy: Tensor,
        target: Tensor,
        noise: Tensor,
        t: Tensor,
        truth: Tensor | None = None,
    ) -> Tensor:
        """Mean squared error between v_theta(t, [x_t, hazy]) and x_1 - x_0.

        A network with an MMSE head (a second output channel) also regresses, at the rows with
        t = 0, x_0 + head onto `truth` (the clean image; `target` when not given). Its
        minimiser is E[truth | hazy] - x_0, so x_0 + head is the posterior mean. A reflow
        student's `target` is the teacher's sample and its `truth` the real clean patch.
        """
        start = self.start_input * hazy + self.start_noise * noise
        t, x_t, u_t = self.matcher.sample_location_and_conditional_flow(start, target, t)
        output = net(t, torch.cat([x_t, hazy], dim=1))
        loss = torch.mean((output[:, :1] - u_t) ** 2)
        if output.shape[1] == 1:
            return loss
        at_start = (t == 0).to(output.dtype)
        truth = target if truth is None else truth
        head_error = torch.mean((start + output[:, 1:2] - truth) ** 2, dim=(1, 2, 3))
        return loss + torch.sum(head_error * at_start) / torch.clamp(at_start.sum(), min=1.0)
