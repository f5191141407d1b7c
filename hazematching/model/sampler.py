"""Posterior sampling (Algorithm 2 of the paper) as TorchScript-compatible modules.

Every exported package carries a copy of this file (`hazematching_sampler.py`) as the
architecture of its state-dict weights, so it holds only what a package runs and imports only
torch and torchcfm. Host-side helpers (scripting, progress, tile counts) are in `sampling.py`.

`EulerSampler` integrates dx/dt = v_theta(t, [x, hazy]) from a start state at t = 0 (Gaussian
noise for HazeMatching; the hazy image, optionally with noise, for the InDI and U-Net baselines)
to an image at t = 1 with T Euler steps, for K samples per image, and returns the MMSE estimate,
the calibrated standard deviation and optionally every sample, stacked on the channel axis. The
MMSE estimate is the samples' mean, or for a network with an MMSE head (a second output channel)
the mean of the head's estimates x_0 + head(x_0, 0, hazy) at the K start states: the first
evaluation of every sample gives one at no extra cost, and the ideal velocity at t = 0 is
E[x_1 | hazy] - x_0, so each estimate is the posterior mean itself, not one sample of it, and the
K of them only average out the head's dependence on x_0. The std is the samples' spread around
their own mean either way: the posterior's spread, which calibration scales to the MMSE's error.
The same class is what `hazematching predict` runs on a checkpoint and what the
exported BioImage.IO package contains (with the model's normalisation inside, see Units), so both
give the same numbers up to float rounding.

Units. The network works in normalised units. The library normalises outside and builds the
sampler with identity intensity maps; an exported package holds its model's normalisation inside,
so it takes and returns intensities with no BioImage.IO pre- or postprocessing: fixed maps
(`input_offset`/`input_scale` in, `output_offset`/`output_scale` out) for a `dataset` model, or
for a `per-image` model (`per_image`) the map of each whole input image, its `low_percentile`
to 0 and its `high_percentile` to 1, applied to the input and inverted on the outputs. Those
percentiles are computed here, with `torch.kthvalue`: BioImage.IO's `scale_range` would need
postprocessing by the input's statistics, which JDLL does not apply, and `torch.quantile`
refuses inputs above 2^24 pixels (a 4096 x 4096 image), while kthvalue has no such limit and
runs in libtorch 2.0. Consumer
tools apply those steps unevenly: JDLL (deepImageJ, Icy) gives every channel of a per-channel
`scale_linear` the first channel's gain and offset, and QuPath skips
`fixed_zero_mean_unit_variance`; a model that maps its own units runs the same everywhere.

Noise. The starting noise must be the same on every device and torch version (CPU, CUDA,
libtorch 2.0 inside Java tools) and must not touch any global random generator, because model
runners such as `bioimageio.core` and deepImageJ seed (or do not seed) the global generator in
ways we cannot control. So every noise value is a pure function of (seed, sample index, global
pixel row, global pixel column): a 32-bit integer hash turned into a normal variate by
Box-Muller. All integer arithmetic stays in int64 without ever overflowing (32-bit products are
split into 16-bit halves), so the integers are bit-identical everywhere; only the final float
transform can differ by rounding between devices. TorchScript cannot read module constants,
which is why the mask 0xFFFFFFFF appears as a literal.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchcfm.models.unet.unet import UNetModel

MMSE_CHANNEL = 0
STD_CHANNEL = 1


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


class EulerSampler(nn.Module):
    """Draws K posterior samples per image with T Euler steps and summarises them.

    Args:
        velocity: the (traced) velocity network, called as velocity(t, [x, hazy]).
        steps: T, the number of Euler steps; velocities are evaluated at t = i/T, i < T.
        samples: K, the number of posterior samples per image.
        seed: seed of the counter-based noise; noise of sample k at pixel (y, x) depends only on
            (seed, k, y, x), so an image gets the same samples alone or inside a batch.
        batch_size: samples integrated together (memory bound: batch_size x images per pass).
        size_multiple: inputs are reflect-padded to a multiple of this and cropped back.
        tile: stride of the tiling (a multiple of `size_multiple`): the velocity is evaluated
            on square tiles of side `tile + overlap` (rounded up to `size_multiple`) placed at
            most `tile` apart, so an image needs no more tiles than non-overlapping tiles of
            side `tile` would. 0, or an image no larger than one tile, means the whole image at
            once. The state x of the whole image is one tensor: at every Euler step the
            velocity of overlapping tiles is blended with a window and x is updated once, so
            samples have no seams and memory is the state plus one batch of tiles.
        overlap: pixels (at least) shared by neighbouring tiles, blended with linear ramps.
        std_scale, std_offset: calibration of the standard deviation (std' = scale*std + offset).
        head: the network's second output channel is an MMSE head (see the module doc).
        keep_samples: append the K samples after the mean and std channels.
        input_offset, input_scale: the network sees (hazy - input_offset) / input_scale.
        output_offset, output_scale: mean and samples leave as x * output_scale + output_offset,
            the std as std * output_scale (identity maps, the defaults, keep network units).
        per_image, low_percentile, high_percentile: instead of the fixed maps above, map each
            image by its own percentiles (low -> 0, high -> 1) and its outputs back alike.
        start_input, start_noise: the start state is x_0 = start_input * hazy + start_noise *
            noise; (0, 1) for HazeMatching, (1, sigma) for InDI, (1, 0) for the U-Net.
    """

    steps: int
    samples: int
    seed: int
    batch_size: int
    size_multiple: int
    tile: int
    overlap: int
    std_scale: float
    std_offset: float
    keep_samples: bool
    head: bool
    start_input: float
    start_noise: float
    input_offset: float
    input_scale: float
    output_offset: float
    output_scale: float
    per_image: bool
    low_percentile: float
    high_percentile: float

    def __init__(
        self,
        velocity: nn.Module,
        *,
        steps: int,
        samples: int,
        seed: int,
        batch_size: int,
        size_multiple: int,
        tile: int = 0,
        overlap: int = 0,
        std_scale: float = 1.0,
        std_offset: float = 0.0,
        keep_samples: bool = False,
        head: bool = False,
        start_input: float = 0.0,
        start_noise: float = 1.0,
        input_offset: float = 0.0,
        input_scale: float = 1.0,
        output_offset: float = 0.0,
        output_scale: float = 1.0,
        per_image: bool = False,
        low_percentile: float = 1.0,
        high_percentile: float = 99.8,
    ) -> None:
        super().__init__()
        if steps < 1 or samples < 1 or batch_size < 1 or size_multiple < 1:
            raise ValueError("steps, samples, batch_size and size_multiple must be >= 1")
        if not 0 <= low_percentile < high_percentile <= 100:
            raise ValueError("percentiles must satisfy 0 <= low < high <= 100")
        if tile < 0 or tile % size_multiple or not 0 <= overlap < max(tile, 1):
            raise ValueError(
                f"tile {tile} must be a multiple of {size_multiple} and overlap {overlap} in "
                "[0, tile)"
            )
        self.velocity = velocity
        self.steps = steps
        self.samples = samples
        self.seed = seed
        self.batch_size = batch_size
        self.size_multiple = size_multiple
        self.tile = tile
        self.overlap = overlap
        self.std_scale = std_scale
        self.std_offset = std_offset
        self.keep_samples = keep_samples
        self.head = head
        self.start_input = start_input
        self.start_noise = start_noise
        self.input_offset = input_offset
        self.input_scale = input_scale
        self.output_offset = output_offset
        self.output_scale = output_scale
        self.per_image = per_image
        self.low_percentile = low_percentile
        self.high_percentile = high_percentile

    @property
    def output_channels(self) -> int:
        """Channels of the output: mean, std and, if kept, one per sample."""
        return 2 + (self.samples if self.keep_samples else 0)

    @torch.jit.export
    def percentile(self, values: Tensor, q: float) -> Tensor:
        """numpy's (linear) `q`-th percentile of a flat tensor, as a 0-d tensor."""
        count = values.numel()
        position = q / 100.0 * (count - 1)
        below = int(position)  # position >= 0, so truncation is the floor
        above = min(below + 1, count - 1)
        low = torch.kthvalue(values, below + 1).values
        high = torch.kthvalue(values, above + 1).values
        return low + (high - low) * (position - below)

    @torch.jit.export
    def intensity_maps(self, hazy: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(input offset, input scale, output offset, output scale) of each image, (B, 1, 1, 1).

        Fixed maps, or with `per_image` each image's percentiles; an image without spread is
        scaled by its magnitude (1 if zero), so every result stays finite.
        """
        batch = hazy.shape[0]
        ones = torch.ones(batch, 1, 1, 1, dtype=hazy.dtype, device=hazy.device)
        if not self.per_image:
            return (
                ones * self.input_offset,
                ones * self.input_scale,
                ones * self.output_offset,
                ones * self.output_scale,
            )
        lows: list[Tensor] = []
        scales: list[Tensor] = []
        for b in range(batch):
            flat = hazy[b].reshape(-1)
            low = self.percentile(flat, self.low_percentile)
            high = self.percentile(flat, self.high_percentile)
            magnitude = torch.where(high != 0, high.abs(), torch.ones_like(high))
            lows.append(low)
            scales.append(torch.where(high > low, high - low, magnitude))
        low_map = torch.stack(lows).reshape(batch, 1, 1, 1)
        scale_map = torch.stack(scales).reshape(batch, 1, 1, 1)
        return low_map, scale_map, low_map, scale_map

    @torch.jit.export
    def pad(self, hazy: Tensor) -> Tensor:
        """Pad the bottom/right edges up to a multiple of `size_multiple` (reflect if possible)."""
        height, width = hazy.shape[-2], hazy.shape[-1]
        m = self.size_multiple
        pad_h = (m - height % m) % m
        pad_w = (m - width % m) % m
        if pad_h == 0 and pad_w == 0:
            return hazy
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        return F.pad(hazy, [0, pad_w, 0, pad_h], mode=mode)

    @torch.jit.export
    def initial_state(self, guide: Tensor, first: int, count: int, row0: int, col0: int) -> Tensor:
        """x_0 for samples first..first+count-1 of every image, ordered (sample, image).

        (row0, col0) is where the guide's top-left pixel lies in the whole image: a block of a
        larger image starts from the very noise the whole image has there.
        """
        batch, height, width = guide.shape[0], guide.shape[-2], guide.shape[-1]
        cond = guide.repeat(count, 1, 1, 1)
        if self.start_noise == 0.0:
            return cond * self.start_input
        fields: list[Tensor] = []
        for j in range(count):
            fields.append(
                gaussian_field(self.seed, first + j, row0, col0, height, width, guide.device)
            )
        noise = (
            torch.stack(fields)
            .to(guide.dtype)[:, None, None]
            .expand(count, batch, 1, height, width)
            .reshape(count * batch, 1, height, width)
        )
        if self.start_input == 0.0:
            return noise * self.start_noise
        return cond * self.start_input + noise * self.start_noise

    @torch.jit.export
    def span(self) -> int:
        """Side of the tiles the network sees: tile + overlap, rounded up to the size multiple."""
        m = self.size_multiple
        return (self.tile + self.overlap + m - 1) // m * m

    @torch.jit.export
    def tile_starts(self, size: int) -> list[int]:
        """Start offsets of tiles covering [0, size), evenly spread, at most `tile` apart."""
        span = self.span()
        if self.tile == 0 or size <= span:
            return [0]
        gaps = (size - span + self.tile - 1) // self.tile
        starts: list[int] = []
        for index in range(gaps + 1):
            starts.append(index * (size - span) // gaps)
        return starts

    @torch.jit.export
    def window(self, size: int, extent: int, device: torch.device) -> Tensor:
        """1D blending weights of a tile of `size` along an image side of `extent` pixels.

        Linear ramps over the overlap, positive everywhere; all ones when one tile spans the side.
        """
        if self.overlap == 0 or size >= extent:
            return torch.ones(size, dtype=torch.float32, device=device)
        position = torch.arange(size, dtype=torch.float32, device=device) + 0.5
        ramp = torch.minimum(position, size - position) / float(self.overlap)
        return torch.clamp(ramp, max=1.0)

    @torch.jit.export
    def tile_shape(self, height: int, width: int) -> tuple[int, int]:
        """Size of the tiles on an image of this (padded) size."""
        if self.tile == 0:
            return height, width
        span = self.span()
        return min(span, height), min(span, width)

    @torch.jit.export
    def tile_passes(self, height: int, width: int, rows: int) -> list[list[tuple[int, int]]]:
        """Tile corners grouped into network passes of about `batch_size` rows in all.

        `rows` is the number of images in the state (samples x images); each tile of the
        state feeds that many rows to the network.
        """
        per_pass = max(1, self.batch_size // max(1, rows))
        passes: list[list[tuple[int, int]]] = []
        group: list[tuple[int, int]] = []
        for row in self.tile_starts(height):
            for col in self.tile_starts(width):
                group.append((row, col))
                if len(group) == per_pass:
                    passes.append(group)
                    group = []
        if len(group) > 0:
            passes.append(group)
        return passes

    @torch.jit.export
    def blend_pass(
        self,
        inputs: Tensor,
        step: int,
        group: list[tuple[int, int]],
        total: Tensor,
        norm: Tensor,
    ) -> None:
        """Evaluate the velocity on one group of tiles and add it, windowed, to total and norm.

        `inputs` is [x, guide] of the whole image; total (like x) and norm (H, W) accumulate
        in place. An untiled image is one group with one tile of weight 1.
        """
        rows, height, width = inputs.shape[0], inputs.shape[-2], inputs.shape[-1]
        size_y, size_x = self.tile_shape(height, width)
        weight = (
            self.window(size_y, height, inputs.device)[:, None]
            * self.window(size_x, width, inputs.device)[None, :]
        )
        weight = weight.to(inputs.dtype)
        crops: list[Tensor] = []
        for corner in group:
            crops.append(
                inputs[:, :, corner[0] : corner[0] + size_y, corner[1] : corner[1] + size_x]
            )
        batch = torch.cat(crops, dim=0)
        t = torch.full(
            [batch.shape[0]], step / self.steps, dtype=inputs.dtype, device=inputs.device
        )
        velocity = self.velocity(t, batch).split(rows)
        for index, corner in enumerate(group):
            r, c = corner
            total[:, :, r : r + size_y, c : c + size_x] += velocity[index] * weight
            norm[r : r + size_y, c : c + size_x] += weight

    @torch.jit.export
    def empty_field(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Zeroed accumulators of `blend_pass` for state x: the network's output channels (the
        velocity, and the head's if it has one) and the (H, W) blending weights."""
        channels = 2 if self.head else 1
        total = torch.zeros(
            [x.shape[0], channels, x.shape[-2], x.shape[-1]], dtype=x.dtype, device=x.device
        )
        norm = torch.zeros([x.shape[-2], x.shape[-1]], dtype=x.dtype, device=x.device)
        return total, norm

    @torch.jit.export
    def network_field(self, x: Tensor, guide: Tensor, step: int) -> Tensor:
        """The network's output at t = step / T for the whole image, from blended overlapping
        tiles: the velocity (channel 0) and, with a head, the head (channel 1)."""
        inputs = torch.cat([x, guide], dim=1)
        total, norm = self.empty_field(x)
        for group in self.tile_passes(x.shape[-2], x.shape[-1], x.shape[0]):
            self.blend_pass(inputs, step, group, total, norm)
        return total / norm

    @torch.jit.export
    def advance(
        self, x: Tensor, field: Tensor, step: int, estimate: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One Euler update x <- x + v / T with the network's output `field` at t = step / T;
        at step 0 of a head model the head's MMSE estimate x_0 + head replaces `estimate`."""
        if self.head and step == 0:
            estimate = x + field[:, 1:2]
        return x + field[:, 0:1] * (1.0 / self.steps), estimate

    @torch.jit.export
    def accumulate(self, x: Tensor, first: int, mean: Tensor, m2: Tensor) -> tuple[Tensor, Tensor]:
        """Fold finished samples into running mean and sum of squared deviations (Welford)."""
        batch = mean.shape[0]
        for j in range(x.shape[0] // batch):
            sample = x[j * batch : (j + 1) * batch]
            delta = sample - mean
            mean = mean + delta / float(first + j + 1)
            m2 = m2 + delta * (sample - mean)
        return mean, m2

    @torch.jit.export
    def summarize(
        self,
        mean: Tensor,
        m2: Tensor,
        kept: list[Tensor],
        height: int,
        width: int,
        offset: Tensor,
        scale: Tensor,
    ) -> Tensor:
        """Stack mean, calibrated std (unbiased; 0 for K = 1) and kept samples mapped to output
        units (x * scale + offset, per image); crop the padding."""
        if self.samples > 1:
            std = torch.sqrt(torch.clamp(m2, min=0.0) / float(self.samples - 1))
        else:
            std = torch.zeros_like(mean)
        std = (std * self.std_scale + self.std_offset) * scale
        channels = [mean * scale + offset, std]
        channels.extend([x * scale + offset for x in kept])
        return torch.cat(channels, dim=1)[:, :, :height, :width]

    def forward(self, hazy: Tensor) -> Tensor:
        """(B, 1, H, W) hazy images -> (B, 2 [+K], H, W): mean, std [, samples]."""
        return self.sample_at(hazy, 0, 0)

    @torch.jit.export
    def sample_at(self, hazy: Tensor, row0: int, col0: int) -> Tensor:
        """`forward` for images whose top-left pixel lies at (row0, col0) of a larger image.

        The samples start from that image's noise at those coordinates, so overlapping blocks
        of one image start alike where they overlap (block-wise prediction of large images).
        """
        height, width = hazy.shape[-2], hazy.shape[-1]
        in_offset, in_scale, out_offset, out_scale = self.intensity_maps(hazy)
        guide = self.pad((hazy - in_offset) / in_scale)
        mean = torch.zeros_like(guide)
        m2 = torch.zeros_like(guide)
        head_mean = torch.zeros_like(guide)
        head_m2 = torch.zeros_like(guide)
        kept: list[Tensor] = []
        for first in range(0, self.samples, self.batch_size):
            count = min(self.batch_size, self.samples - first)
            x = self.initial_state(guide, first, count, row0, col0)
            cond = guide.repeat(count, 1, 1, 1)
            estimate = x
            for step in range(self.steps):
                x, estimate = self.advance(x, self.network_field(x, cond, step), step, estimate)
            mean, m2 = self.accumulate(x, first, mean, m2)
            if self.head:
                head_mean, head_m2 = self.accumulate(estimate, first, head_mean, head_m2)
            if self.keep_samples:
                kept.extend(x.split(guide.shape[0]))
        if self.head:
            mean = head_mean
        return self.summarize(mean, m2, kept, height, width, out_offset, out_scale)


class PackagedSampler(EulerSampler):
    """`EulerSampler` around an eager velocity network built from plain keyword arguments.

    The architecture of the `pytorch_state_dict` weights of exported packages: `unet` holds the
    keyword arguments of torchcfm's `UNetModel`, the rest those of `EulerSampler`.
    """

    def __init__(self, unet: dict, **sampler_kwargs: object) -> None:
        super().__init__(VelocityNet(UNetModel(**unet)), **sampler_kwargs)
