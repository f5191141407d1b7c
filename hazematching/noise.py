"""Device-independent Gaussian noise from a counter-based integer hash.

The sampler's starting noise must be the same on every device and torch version (CPU, CUDA,
libtorch 2.0 inside Java tools) and must not touch any global random generator, because model
runners such as `bioimageio.core` and deepImageJ seed (or do not seed) the global generator in ways
we cannot control. So every noise value is a pure function of (seed, sample index, global pixel
row, global pixel column): a 32-bit integer hash turned into a normal variate by Box-Muller.

All arithmetic stays in int64 without ever overflowing (32-bit products are split into 16-bit
halves), so the integers are bit-identical everywhere; only the final float transform can differ
by rounding between devices. Every function here is TorchScript-compatible (which is why the
32-bit mask 0xFFFFFFFF appears as a literal: TorchScript cannot read module constants).
"""

import math

import torch
from torch import Tensor


def _mul32(a: Tensor, c: int) -> Tensor:
    """(a * c) mod 2**32 for int64 tensors holding values in [0, 2**32), without overflow."""
    low = a & 0xFFFF
    high = a >> 16
    return (low * c + (((high * c) & 0xFFFF) << 16)) & 0xFFFFFFFF


def mix32(x: Tensor) -> Tensor:
    """A 32-bit avalanche hash (two multiply-xorshift rounds) of each element."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def combine(h: Tensor, key: Tensor) -> Tensor:
    """Fold one more 32-bit key into a running hash."""
    return mix32(((h ^ key) + 0x9E3779B9) & 0xFFFFFFFF)


def gaussian_field(
    seed: int, sample: int, row0: int, col0: int, height: int, width: int, device: torch.device
) -> Tensor:
    """Standard normal values for pixels [row0, row0+height) x [col0, col0+width) of one sample.

    Returns a float32 tensor of shape (height, width). The value at a pixel depends only on the
    seed, the sample index and the pixel's global coordinates, so any crop of a larger field
    equals the same crop computed directly.
    """
    base = torch.full((1, 1), seed & 0xFFFFFFFF, dtype=torch.int64, device=device)
    base = combine(base, torch.full((1, 1), sample & 0xFFFFFFFF, dtype=torch.int64, device=device))
    rows = torch.arange(row0, row0 + height, dtype=torch.int64, device=device).view(-1, 1)
    cols = torch.arange(col0, col0 + width, dtype=torch.int64, device=device).view(1, -1)
    pixel = combine(combine(base, rows), cols)
    h1 = combine(pixel, torch.zeros_like(pixel))
    h2 = combine(pixel, torch.ones_like(pixel))
    # 24-bit uniforms are exact in float32; u1 lies in (0, 1) so the logarithm is finite.
    u1 = ((h1 >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)
    u2 = (h2 >> 8).to(torch.float32) * (1.0 / 16777216.0)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
