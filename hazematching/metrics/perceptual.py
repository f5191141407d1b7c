"""LPIPS and FID from weight files the user supplies (nothing is ever downloaded).

LPIPS (Zhang et al. 2018, AlexNet variant) needs two files: torchvision's AlexNet weights
(`alexnet-owt-7be5be79.pth`) and the LPIPS linear layers (`alex.pth` of the `lpips` package,
version 0.1). FID needs torchvision's Inception-v3 weights (`inception_v3_google-0cc3c7bd.pth`);
its features are the 2048 pooled activations. These are torchvision's Inception weights, not the
TensorFlow graph of the original FID, so values are comparable between methods evaluated here,
not with FIDs published elsewhere. With a few dozen 64 px patches FID is also strongly biased
upwards; compare methods on the same patches only.

Grayscale patches in [0, 1] (see `similarity.percentile_normalize`) are repeated to three
channels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import HazeMatchingError

LPIPS_LAYERS = (64, 192, 384, 256, 256)  # AlexNet channels after relu1 .. relu5
_LPIPS_SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))  # features indices of relu1 .. 5
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _load_state(path: Path, what: str) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise HazeMatchingError(f"{what} weights not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise HazeMatchingError(
            f"cannot read {what} weights ({type(error).__name__})", path
        ) from error
    if not isinstance(state, dict):
        raise HazeMatchingError(f"{what} weights are not a state dict", path)
    return state


def _to_batch(images: list[np.ndarray]) -> Tensor:
    """[0, 1] grayscale images (equal shapes) -> (N, 3, H, W) float32."""
    batch = torch.from_numpy(np.stack(images).astype(np.float32))[:, None]
    return batch.expand(-1, 3, -1, -1)


class Lpips(nn.Module):
    """LPIPS distance with AlexNet features; 0 for identical images, larger is less alike."""

    def __init__(self, alexnet_weights: Path, linear_weights: Path) -> None:
        super().__init__()
        from torchvision.models import alexnet

        backbone = alexnet(weights=None)
        try:
            backbone.load_state_dict(_load_state(alexnet_weights, "AlexNet"))
        except RuntimeError as error:
            raise HazeMatchingError("not torchvision AlexNet weights", alexnet_weights) from error
        self.features = backbone.features.eval()
        self.linear = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in LPIPS_LAYERS)
        state = _load_state(linear_weights, "LPIPS linear-layer")
        try:
            for index, layer in enumerate(self.linear):
                layer.weight.data.copy_(state[f"lin{index}.model.1.weight"])
        except (KeyError, RuntimeError) as error:
            raise HazeMatchingError(
                "not LPIPS v0.1 AlexNet linear layers (expected lin0..lin4)", linear_weights
            ) from error
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT)[None, :, None, None])
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE)[None, :, None, None])

    def _features(self, x: Tensor) -> list[Tensor]:
        x = ((2 * x - 1) - self.shift) / self.scale
        outputs = []
        for start, stop in _LPIPS_SLICES:
            for layer in self.features[start:stop]:
                x = layer(x)
            outputs.append(x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + 1e-10))
        return outputs

    @torch.no_grad()
    def distances(self, first: list[np.ndarray], second: list[np.ndarray]) -> np.ndarray:
        """LPIPS of each pair of [0, 1] patches (at least 32 px, AlexNet's smallest input)."""
        a, b = self._features(_to_batch(first)), self._features(_to_batch(second))
        total = torch.zeros(len(first))
        for layer, fa, fb in zip(self.linear, a, b, strict=True):
            total += layer((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return total.numpy()


class InceptionFeatures(nn.Module):
    """The 2048 pooled Inception-v3 activations of 299 x 299 resized patches."""

    def __init__(self, weights: Path) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        try:
            net.load_state_dict(_load_state(weights, "Inception-v3"))
        except RuntimeError as error:
            raise HazeMatchingError("not torchvision Inception-v3 weights", weights) from error
        net.fc = nn.Identity()
        self.net = net.eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN)[None, :, None, None])
        self.register_buffer("std", torch.tensor(_IMAGENET_STD)[None, :, None, None])

    @torch.no_grad()
    def features(self, images: list[np.ndarray], batch: int = 16) -> np.ndarray:
        """(N, 2048) features of [0, 1] grayscale patches."""
        out = []
        for start in range(0, len(images), batch):
            x = _to_batch(images[start : start + batch])
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.net((x - self.mean) / self.std).numpy())
        return np.concatenate(out).astype(np.float64)


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples).

    tr(sqrt(S1 S2)) is computed as the sum of square roots of the eigenvalues of
    sqrt(S1) S2 sqrt(S1), which is symmetric, so only symmetric eigendecompositions are used.
    """
    if len(first) < 2 or len(second) < 2:
        raise ValueError("FID needs at least two feature vectors per set")
    mu1, mu2 = first.mean(axis=0), second.mean(axis=0)
    s1, s2 = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    values, vectors = np.linalg.eigh(s1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root1 @ s2 @ root1)
    trace_root = float(np.sum(np.sqrt(np.clip(middle, 0, None))))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_root)
