"""The guided conditional flow matching objective (eq. 11 and 15, Algorithm 1 of the paper).

x_t = (1 - t) x_0 + t x_1 interpolates from Gaussian noise x_0 to the clean target x_1 (torchcfm's
`ConditionalFlowMatcher` with sigma = 0); the network sees [x_t, hazy] and regresses the target
velocity x_1 - x_0. Times are drawn from the grid {0, 1/T, ..., (T-1)/T}: exactly the times at
which the Euler sampler with T steps evaluates the network.
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
    """Computes the loss of eq. 15 for a batch of (hazy, target) patches."""

    def __init__(self) -> None:
        self.matcher = ConditionalFlowMatcher(sigma=0.0)

    def loss(
        self, net: nn.Module, hazy: Tensor, target: Tensor, noise: Tensor, t: Tensor
    ) -> Tensor:
        """Mean squared error between v_theta(t, [x_t, hazy]) and x_1 - x_0."""
        t, x_t, u_t = self.matcher.sample_location_and_conditional_flow(noise, target, t)
        velocity = net(t, torch.cat([x_t, hazy], dim=1))
        return torch.mean((velocity - u_t) ** 2)
