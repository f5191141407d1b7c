"""The exponential moving average of network weights that every training method predicts with."""

from __future__ import annotations

import torch
from torch import nn


def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """ema <- d * ema + (1 - d) * model, with d warmed up as (1 + step) / (10 + step)."""
    d = min(decay, (1.0 + step) / (10.0 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for e, b in zip(ema.buffers(), model.buffers(), strict=True):
            e.copy_(b)
