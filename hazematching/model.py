"""The velocity network v_theta(t, [x_t, hazy]) and its TorchScript form.

The network is torchcfm's `UNetModel` with two input channels (the current state x_t and the hazy
guide) and one output channel (the velocity). torchcfm's U-Net cannot be scripted (it branches on
`isinstance` inside `TimestepEmbedSequential`), so it is traced; tracing keeps spatial size and
batch size dynamic, which is all the sampler needs.

`VelocityNet` runs the U-Net's blocks exactly as `UNetModel.forward` does, but keeps the
sinusoidal time-embedding frequencies in a buffer: torchcfm creates them with `torch.arange` on
the input's device, which a trace freezes to the tracing device, so a model traced on the CPU
would fail on a GPU. A buffer moves with the module instead.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torchcfm.models.unet.unet import UNetModel

from .config import NetworkConfig

IN_CHANNELS = 2  # x_t and the hazy guide, concatenated along channels
OUT_CHANNELS = 1


class VelocityNet(nn.Module):
    """torchcfm's U-Net with a device-portable time embedding; called as net(t, x)."""

    def __init__(self, unet: UNetModel) -> None:
        super().__init__()
        self.unet = unet
        half = unet.model_channels // 2  # model_channels is a multiple of 32: no odd padding
        freqs = torch.exp(-math.log(10000.0) * torch.arange(0, half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Velocity for times t of shape (N,) and inputs x of shape (N, 2, H, W)."""
        args = t[:, None].float() * self.freqs[None]
        emb = self.unet.time_embed(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))
        skips = []
        h = x
        for module in self.unet.input_blocks:
            h = module(h, emb)
            skips.append(h)
        h = self.unet.middle_block(h, emb)
        for module in self.unet.output_blocks:
            h = module(torch.cat([h, skips.pop()], dim=1), emb)
        return self.unet.out(h)


def build_velocity_net(config: NetworkConfig, patch_size: int) -> VelocityNet:
    """A freshly initialised velocity network of the given architecture.

    Weight initialisation draws from torch's global generator, so callers seed it first (the
    training loop does, from the run's seed).
    """
    return VelocityNet(_unet(config, patch_size))


def _unet(config: NetworkConfig, patch_size: int) -> UNetModel:
    return UNetModel(
        image_size=patch_size,
        in_channels=IN_CHANNELS,
        model_channels=config.model_channels,
        out_channels=OUT_CHANNELS,
        num_res_blocks=config.num_res_blocks,
        attention_resolutions=tuple(config.attention_downsample),
        dropout=config.dropout,
        channel_mult=tuple(config.channel_mult),
        num_heads=config.num_heads,
    )


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def trace_velocity(net: nn.Module, patch_size: int) -> torch.jit.ScriptModule:
    """Trace the network in eval mode on a (2, 2, patch, patch) example.

    The trace generalises to other spatial and batch sizes; the test suite checks it against
    eager execution on both.
    """
    net = net.eval()
    t = torch.tensor([0.25, 0.75])
    x = torch.zeros(2, IN_CHANNELS, patch_size, patch_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*is deprecated")
        traced = torch.jit.trace(net, (t, x), check_trace=False)
    return traced
