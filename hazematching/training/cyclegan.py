"""The pieces of unpaired training: a CycleGAN whose second generator is one blur kernel.

After Lim et al., "CycleGAN with a blur kernel for deconvolution microscopy": one deep generator
G (hazy y -> sharp x) and a linear blur h (sharp -> hazy) are trained with the cycle losses
x ~ G(h * x) and y ~ h * G(y) against discriminators of each domain. The discriminators are
multi-scale PatchGANs (one per scale: full, 1/2, 1/4 ...) trained with least-squares GAN
losses on generated patches drawn partly from a history buffer, which damps oscillation.

G is the same network as the U-Net baseline, used as a point predictor: G(y) = y + v(0, [y, y]),
exactly the one Euler step the sampler takes for a point predictor, so a trained G predicts,
evaluates and exports through the unchanged sampling path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .kernel import BlurKernel


def generate(net: nn.Module, hazy: torch.Tensor) -> torch.Tensor:
    """G(y) = y + v(0, [y, y]): the point predictor's single Euler step from the hazy image."""
    t = torch.zeros(hazy.shape[0], device=hazy.device)
    return hazy + net(t, torch.cat([hazy, hazy], dim=1))


@dataclass(frozen=True)
class Cycle:
    """Both half-cycles of a batch: the generated images and the two cycle losses."""

    fake_sharp: torch.Tensor  # G(y)
    fake_hazy: torch.Tensor  # h * x
    loss_sharp: torch.Tensor  # mean |x - G(h * x)|
    loss_hazy: torch.Tensor  # mean |y - h * G(y)|


def cycle(
    net: nn.Module, kernel: BlurKernel, confocal: torch.Tensor, widefield: torch.Tensor
) -> Cycle:
    """Run x -> h * x -> G(h * x) and y -> G(y) -> h * G(y) for confocal x and widefield y."""
    fake_sharp = generate(net, widefield)
    fake_hazy = kernel(confocal)
    loss_sharp = (generate(net, fake_hazy) - confocal).abs().mean()
    loss_hazy = (kernel(fake_sharp) - widefield).abs().mean()
    return Cycle(fake_sharp, fake_hazy, loss_sharp, loss_hazy)


class PatchGAN(nn.Module):
    """A PatchGAN: a small fully convolutional net scoring every ~30 px window as real or fake."""

    def __init__(self, width: int) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int, norm: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride, 1)]
            if norm:
                layers.append(nn.InstanceNorm2d(cout, affine=True))
            return [*layers, nn.LeakyReLU(0.2)]

        self.layers = nn.Sequential(
            *block(1, width, 2, False),
            *block(width, 2 * width, 2, True),
            *block(2 * width, 4 * width, 1, True),
            nn.Conv2d(4 * width, 1, 4, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MultiScaleDiscriminator(nn.Module):
    """Independent PatchGANs on the image at full, half, quarter ... resolution."""

    def __init__(self, scales: int, width: int) -> None:
        super().__init__()
        self.nets = nn.ModuleList(PatchGAN(width) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        scores = []
        for index, net in enumerate(self.nets):
            scores.append(net(F.avg_pool2d(x, 2**index) if index else x))
        return scores


def lsgan_generator_loss(scores: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN loss of the generator: mean (D(fake) - 1)^2, summed over scales."""
    return sum(((s - 1.0) ** 2).mean() for s in scores)  # type: ignore[return-value]


def lsgan_discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN loss of a discriminator: (mean (D(real) - 1)^2 + mean D(fake)^2) / 2."""
    return sum(  # type: ignore[return-value]
        0.5 * (((r - 1.0) ** 2).mean() + (f**2).mean()) for r, f in zip(real, fake, strict=True)
    )


class HistoryBuffer:
    """Up to `capacity` earlier generated patches (Shrivastava et al.; the CycleGAN image pool).

    Each new patch enters the pool while it is not full; afterwards, with probability 1/2 it
    replaces a random stored patch, which is shown to the discriminator instead. All draws come
    from the generator passed in, and the pool is plain tensor state, saved in checkpoints.
    """

    def __init__(self, capacity: int, patches: torch.Tensor | None = None) -> None:
        self.capacity = capacity
        self.patches = patches if patches is not None else torch.empty(0)

    def query(self, rng: np.random.Generator, batch: torch.Tensor) -> torch.Tensor:
        """The patches to show the discriminator for this generated `batch` (detached)."""
        batch = batch.detach().cpu()
        if self.capacity == 0:
            return batch
        shown = []
        for patch in batch:
            patch = patch[None]
            if len(self.patches) < self.capacity:
                self.patches = (
                    patch.clone() if not len(self.patches) else torch.cat([self.patches, patch])
                )
                shown.append(patch)
            elif rng.random() < 0.5:
                index = int(rng.integers(len(self.patches)))
                shown.append(self.patches[index : index + 1].clone())
                self.patches[index] = patch[0]
            else:
                shown.append(patch)
        return torch.cat(shown)
