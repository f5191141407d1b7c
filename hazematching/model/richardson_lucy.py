"""The Richardson-Lucy model: deconvolution with a known PSF as a TorchScript module, and its file.

RL needs no training data, only the PSF and a number of iterations (chosen by
`training.richardson_lucy.fit_richardson_lucy`); both are stored in a small model file that
`evaluate` and `export` accept like a checkpoint.

The module works on raw intensities: the image minimum is moved to zero (RL needs non-negative
data), the image is reflect-padded by the PSF radius so the FFT convolution does not wrap, and
the estimate is shifted back. Output channels are the deconvolved image and a zero std: RL is a
point predictor.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import HazeMatchingError
from ..fileio import atomic_path

FORMAT = "hazematching-richardson-lucy"
MODEL_FILE = "richardson_lucy.pt"


class RichardsonLucy(nn.Module):
    """`iterations` Richardson-Lucy updates with a centred 2D PSF (odd or even side)."""

    iterations: int

    def __init__(self, psf: Tensor, iterations: int) -> None:
        super().__init__()
        if psf.ndim != 2 or iterations < 1:
            raise ValueError("the PSF must be 2D and iterations >= 1")
        self.register_buffer("psf", (psf / psf.sum()).to(torch.float32))
        self.iterations = iterations

    def transfer(self, height: int, width: int) -> Tensor:
        """Optical transfer function on a (height, width) grid: the PSF centred on pixel 0."""
        psf = self.psf
        ky, kx = psf.shape[0], psf.shape[1]
        cy, cx = ky // 2, kx // 2
        # keep the central part of a PSF larger than the grid
        top, left = max(0, cy - height // 2), max(0, cx - width // 2)
        psf = psf[top : top + min(ky, height), left : left + min(kx, width)]
        cy, cx = cy - top, cx - left
        grid = torch.zeros([height, width], dtype=psf.dtype, device=psf.device)
        grid[: psf.shape[0], : psf.shape[1]] = psf / psf.sum()
        grid = torch.roll(grid, shifts=[-cy, -cx], dims=[0, 1])
        return torch.fft.rfft2(grid)

    @torch.jit.export
    def run(self, image: Tensor, iterations: int, record: bool) -> list[Tensor]:
        """Estimates of (B, 1, H, W) intensities after every iteration (`record`) or the last."""
        height, width = image.shape[-2], image.shape[-1]
        pad_y = min(self.psf.shape[0] // 2, height - 1)
        pad_x = min(self.psf.shape[1] // 2, width - 1)
        floor = torch.amin(image, dim=[1, 2, 3], keepdim=True)
        data = F.pad(image - floor + 1e-6, [pad_x, pad_x, pad_y, pad_y], mode="reflect")
        size = [data.shape[-2], data.shape[-1]]
        otf = self.transfer(size[0], size[1])
        estimate = torch.ones_like(data) * torch.mean(data, dim=[1, 2, 3], keepdim=True)
        results: list[Tensor] = []
        for index in range(iterations):
            blurred = torch.fft.irfft2(torch.fft.rfft2(estimate) * otf, s=size)
            ratio = data / torch.clamp(blurred, min=1e-6)
            estimate = estimate * torch.fft.irfft2(torch.fft.rfft2(ratio) * otf.conj(), s=size)
            if record or index == iterations - 1:
                crop = estimate[:, :, pad_y : pad_y + height, pad_x : pad_x + width]
                results.append(crop + floor)
        return results

    def forward(self, image: Tensor) -> Tensor:
        """(B, 1, H, W) intensities -> (B, 2, H, W): deconvolved image and a zero std."""
        estimate = self.run(image, self.iterations, False)[-1]
        return torch.cat([estimate, torch.zeros_like(estimate)], dim=1)


@dataclass(frozen=True)
class RichardsonLucyModel:
    """A PSF, the chosen iteration count, and the validation curve it was chosen on."""

    psf: np.ndarray
    iterations: int
    psf_source: str
    curve: list[float]

    def module(self) -> torch.jit.ScriptModule:
        """The scripted deconvolution module."""
        return torch.jit.script(RichardsonLucy(torch.from_numpy(self.psf), self.iterations))


def is_richardson_lucy(path: Path) -> bool:
    """Whether `path` is a Richardson-Lucy model file (or a folder holding one)."""
    path = Path(path)
    return (path / MODEL_FILE).is_file() if path.is_dir() else path.name == MODEL_FILE


def save_richardson_lucy(path: Path, model: RichardsonLucyModel) -> None:
    """Write the model file atomically (tensors and plain data only)."""
    with atomic_path(Path(path)) as tmp:
        torch.save(
            {
                "format": FORMAT,
                "psf": torch.from_numpy(model.psf),
                "iterations": model.iterations,
                "psf_source": model.psf_source,
                "curve": model.curve,
            },
            tmp,
        )


def load_richardson_lucy(path: Path) -> RichardsonLucyModel:
    """Read a model file (or folder/richardson_lucy.pt) with clear errors."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        if raw.get("format") != FORMAT:
            raise ValueError("wrong format")
        psf = raw["psf"].numpy()
        if psf.ndim != 2 or not np.isfinite(psf).all() or psf.sum() <= 0:
            raise ValueError("invalid PSF")
        return RichardsonLucyModel(
            psf, int(raw["iterations"]), str(raw["psf_source"]), list(raw["curve"])
        )
    except FileNotFoundError as error:
        raise HazeMatchingError("Richardson-Lucy model not found", path) from error
    except Exception as error:
        raise HazeMatchingError(f"not a Richardson-Lucy model ({error})", path) from error


def deconvolve(module: torch.jit.ScriptModule, image: np.ndarray) -> np.ndarray:
    """Deconvolve one (Y, X) image with a scripted `RichardsonLucy`."""
    with torch.no_grad():
        out = module(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None])
    return out[0, 0].numpy()
