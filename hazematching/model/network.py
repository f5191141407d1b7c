"""The velocity network v_theta(t, [x_t, hazy]) and its TorchScript form.

The network is torchcfm's `UNetModel` with two input channels (the current state x_t and the hazy
guide) and one output channel (the velocity), or two with an MMSE head (`NetworkConfig.mmse_head`:
the second channel is trained at t = 0 only, where x_0 plus it estimates E[x_1 | hazy]).
torchcfm's U-Net cannot be scripted (it branches on `isinstance` inside
`TimestepEmbedSequential`), so it is traced; tracing keeps spatial size and batch size dynamic,
which is all the sampler needs.

The network itself, `VelocityNet`, lives in `sampling.py`, which exported packages ship.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchcfm.models.unet.unet import UNetModel

from ..config import NetworkConfig
from .sampler import VelocityNet

IN_CHANNELS = 2  # x_t and the hazy guide, concatenated along channels
OUTPUT_LAYER = "unet.out."  # prefix of the output layer's parameters in the state dict


def out_channels(config: NetworkConfig) -> int:
    """The velocity, and the MMSE head's channel when the network has one."""
    return 2 if config.mmse_head else 1


def unet_kwargs(config: NetworkConfig, patch_size: int) -> dict[str, object]:
    """Keyword arguments of torchcfm's `UNetModel` for this architecture (plain JSON data)."""
    return {
        "image_size": patch_size,
        "in_channels": IN_CHANNELS,
        "model_channels": config.model_channels,
        "out_channels": out_channels(config),
        "num_res_blocks": config.num_res_blocks,
        "attention_resolutions": list(config.attention_downsample),
        "dropout": config.dropout,
        "channel_mult": list(config.channel_mult),
        "num_heads": config.num_heads,
    }


def build_velocity_net(config: NetworkConfig, patch_size: int) -> VelocityNet:
    """A freshly initialised velocity network of the given architecture.

    Weight initialisation draws from torch's global generator, so callers seed it first (the
    training loop does, from the run's seed).
    """
    return VelocityNet(UNetModel(**unet_kwargs(config, patch_size)))


def load_widening_output(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load weights of a network with one output channel into one with an MMSE head.

    The head channel starts as a copy of the velocity channel, so at t = 0 the head's estimate
    x_0 + v starts as the teacher's one-evaluation estimate of the mean; every other weight is
    copied unchanged. Weights of the same shape load as they are.
    """
    own = net.state_dict()
    widened = {}
    for key, value in state.items():
        target = own.get(key)
        if (
            key.startswith(OUTPUT_LAYER)
            and target is not None
            and target.shape[0] == 2 * value.shape[0]
            and target.shape[1:] == value.shape[1:]
        ):
            value = torch.cat([value, value])
        widened[key] = value
    net.load_state_dict(widened)


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
