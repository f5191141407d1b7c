"""The blur kernel h of unpaired training: the linear "sharp -> hazy" generator.

h acts in the network's normalised units, confocal z-scores -> widefield z-scores. Because both
are z-scores of images related by a blur plus a background, the relation is a convolution without
offset, and only h's overall gain differs from the physical PSF; its shape is the PSF's. So the
kernel written to disk is h divided by its sum, and compared with a reference PSF (the simulator's
`widefield_psf.tif`) after both are cropped to h's size around their centre and normalised to
sum 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.tiff import read_single
from ..errors import HazeMatchingError


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """A centred, isotropic Gaussian of side `size` (odd) summing to 1."""
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def centre_crop(psf: np.ndarray, size: int) -> np.ndarray:
    """The `size` x `size` window of `psf` centred on its brightest pixel, zero-padded if needed."""
    cy, cx = np.unravel_index(int(np.argmax(psf)), psf.shape)
    r = size // 2
    padded = np.pad(psf, r)
    return padded[cy : cy + size, cx : cx + size].astype(np.float32)


def read_psf(path: Path, size: int) -> np.ndarray:
    """A 2D PSF TIFF cropped to `size` around its peak and normalised to sum 1."""
    planes = read_single(path)
    if planes.shape[0] != 1:
        raise HazeMatchingError(f"a PSF must be one 2D image, found {planes.shape[0]} planes", path)
    psf = centre_crop(planes[0], size)
    total = float(psf.sum())
    if total <= 0:
        raise HazeMatchingError("the PSF must have a positive sum", path)
    return psf / total


def kernel_distance(kernel: np.ndarray, reference: np.ndarray) -> float:
    """Relative l2 distance ||k - p|| / ||p|| of unit-sum kernel and unit-sum cropped reference.

    0 is a perfect match; a delta or a very wide kernel against a typical PSF is near 1.
    """
    size = kernel.shape[0]
    k = kernel / kernel.sum()
    p = centre_crop(reference, size)
    p = p / p.sum()
    return float(np.linalg.norm(k - p) / np.linalg.norm(p))


class BlurKernel(nn.Module):
    """Convolution with a single kernel, mirror-padded so the output has the input's size.

    Blind: every weight is learned (starting from a unit-sum Gaussian). Non-blind: the shape is a
    fixed PSF and only a gain is learned, since a PSF file says nothing about photon levels.
    """

    def __init__(self, initial: np.ndarray, *, learn_shape: bool) -> None:
        super().__init__()
        weight = torch.tensor(np.asarray(initial, dtype=np.float32))[None, None]
        if learn_shape:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)
        self.log_gain = nn.Parameter(torch.zeros(()))

    @property
    def pad(self) -> int:
        return self.weight.shape[-1] // 2

    def kernel(self) -> torch.Tensor:
        """The effective (1, 1, k, k) kernel, gain included."""
        return self.weight * self.log_gain.exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """h * x (a true convolution) for x of shape (N, 1, H, W), H and W above half the kernel."""
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.conv2d(x, torch.flip(self.kernel(), (-2, -1)))

    def l1(self) -> torch.Tensor:
        """||h||_1, the sparsity penalty of the blind kernel."""
        return self.kernel().abs().sum()

    def unit_sum(self) -> np.ndarray:
        """The kernel's shape: the effective kernel divided by its sum (float32, k x k)."""
        kernel = self.kernel().detach().cpu().numpy()[0, 0]
        return (kernel / kernel.sum()).astype(np.float32)
