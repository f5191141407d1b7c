"""Helpers shared by the test modules (tests never import each other).

`run` calls the installed `hazematching` command as a user would; `tiny_train_config` is a
network and budget small enough for a unit test on 2 CPU cores.

The velocity fields below are called like the velocity network, as `field(t, x)` with x of shape
(N, 2, H, W) = [state, hazy], and return (N, 1, H, W). Their Euler solutions have closed forms,
so sampler tests can assert exact numbers; they script and trace inside `EulerSampler`.
`reinitialised_velocity_net` is a real U-Net whose output is not identically zero, for tests
where the network itself (time embedding, tracing) matters. `write_czi` and `write_ome` write
real microscope files (Zeiss's pylibCZIrw, tifffile's OME writer) of `microscope_stack`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile
import torch
from torch import Tensor, nn
from typer.testing import CliRunner, Result

from hazematching.bioimage.layout import read_raw_description
from hazematching.config import NetworkConfig, SamplingConfig, TrainConfig
from hazematching.export.reader_rules import reader_rules
from hazematching.model.network import build_velocity_net
from hazematching.model.sampler import VelocityNet

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXE = shutil.which("hazematching") or str(Path(sys.executable).parent / "hazematching")
#: Sampling of the evaluation tests: enough samples for a std, few steps for speed.
EVAL_SAMPLING = SamplingConfig(samples=3, steps=2, seed=0)
TINY_NETWORK = NetworkConfig(model_channels=32, channel_mult=(1, 2, 2, 2), attention_downsample=())


def failed_reader_rules(package: Path) -> list[str]:
    """The deployed-reader rules of `check` that a package breaks, with what was found."""
    rdf = read_raw_description(package)
    assert rdf is not None, package
    return [f"{r.rule}: {r.detail}" for r in reader_rules(rdf, package) if not r.passed]


def run(*args: object) -> subprocess.CompletedProcess[str]:
    """The `hazematching` command with these arguments; output captured as text."""
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=600)


def invoke(*args: object) -> Result:
    """The `hazematching` command run in this process by typer's test runner.

    The same parsing, library calls and one-line error reporting as `run`, without starting a
    new interpreter (and importing torch) per call; `run` is for end-to-end runs.
    """
    from hazematching.cli import app

    return CliRunner().invoke(app, list(map(str, args)))


def tiny_train_config(**overrides: object) -> TrainConfig:
    """A network and budget small enough for a unit test on 2 CPU cores."""
    values: dict[str, object] = {
        "steps": 8,
        "patch_size": 32,
        "batch_size": 4,
        "val_every": 4,
        "val_patches": 4,
        "device": "cpu",
        "network": TINY_NETWORK,
    }
    values.update(overrides)
    return TrainConfig.model_validate(values)


class ConstantField(nn.Module):
    """v = c everywhere. Each of the T Euler steps adds c / T, so x_1 = x_0 + c for any T."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """c at every pixel of every row."""
        return torch.full_like(x[:, :1], self.c)


class LinearField(nn.Module):
    """v = a * state. Euler with T steps gives x_1 = x_0 (1 + a/T)^T (the ODE gives x_0 e^a)."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = a

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """a times the state channel."""
        return self.a * x[:, :1]


class GuideField(nn.Module):
    """v = hazy, pixel by pixel: x_1 = x_0 + hazy for any T.

    It is pointwise, so any tiling whose blending weights are normalised reproduces the untiled
    result, while a tile evaluated at one place and added at another does not.
    """

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """The hazy channel."""
        return x[:, 1:2]


class TimeGuideField(nn.Module):
    """v = 2 t hazy. Euler at t = i/T gives x_1 = x_0 + hazy (T - 1)/T (the ODE gives x_0 + hazy).

    The Euler sum is sum_i 2 (i/T) / T = (T - 1)/T; evaluating at t = (i+1)/T would give
    (T + 1)/T, a step of 1/(T+1) would give (T - 1)/(T + 1).
    """

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """2 t times the hazy channel, t broadcast per row."""
        return 2.0 * t[:, None, None, None] * x[:, 1:2]


class TileMeanField(nn.Module):
    """v = the mean of hazy over the whole input the field sees, at every pixel.

    Not local: on a tile it is the tile's mean, so it shows where tiles lie and how their
    velocities are blended. Untiled, x_1 = x_0 + mean(hazy) for any T.
    """

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """The per-row spatial mean of the hazy channel, broadcast to every pixel."""
        guide = x[:, 1:2]
        return torch.ones_like(guide) * guide.mean(dim=[2, 3], keepdim=True)


class GaussianPosteriorField(nn.Module):
    """The exact flow of a Gaussian posterior, with its exact MMSE head.

    For x_1 | hazy ~ N(hazy, s^2) pixel by pixel and x_0 ~ N(0, 1), x_t = (1 - t) x_0 + t x_1 has
    mean t hazy and variance sigma_t^2 = (1 - t)^2 + t^2 s^2, and the ideal velocity is
    v = hazy + (t s^2 - (1 - t)) (x - t hazy) / sigma_t^2. Its ODE solution is
    x_t = t hazy + sigma_t x_0, so x_1 = hazy + s x_0; at t = 0 the velocity is hazy - x_0, the
    posterior mean minus the state. Channel 0 is v; channel 1, the head, is hazy - x at every t
    (the sampler reads it at t = 0 only), so x_0 + head = E[x_1 | hazy] = hazy exactly.
    """

    def __init__(self, spread: float) -> None:
        super().__init__()
        self.spread = spread

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """(velocity, head) of the state x[:, 0] guided by hazy x[:, 1]."""
        state, hazy = x[:, :1], x[:, 1:2]
        t = t[:, None, None, None]
        variance = (1 - t) ** 2 + t**2 * self.spread**2
        velocity = hazy + (t * self.spread**2 - (1 - t)) * (state - t * hazy) / variance
        return torch.cat([velocity, hazy - state], dim=1)


class RecordingField(nn.Module):
    """Eager-only wrapper that records every call (t and input) and returns the inner field's v."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[Tensor, Tensor]] = []

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """The inner field's velocity; (t, x) is appended to `calls`."""
        self.calls.append((t.clone(), x.clone()))
        return self.inner(t, x)


def reinitialised_velocity_net(
    config: NetworkConfig, patch_size: int, seed: int, scale: float = 0.05
) -> VelocityNet:
    """A U-Net velocity network (eval mode) whose output is non-zero and depends on t.

    torchcfm zero-initialises the output convolution and the last convolution of every residual
    and attention branch, so a fresh network returns exactly 0 for any input and the time
    embedding, which enters inside the residual branches, never reaches the output. Every
    parameter that is exactly zero is drawn from N(0, scale^2) instead. The global generator is
    left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_velocity_net(config, patch_size)
        with torch.no_grad():
            for parameter in net.parameters():
                if not parameter.any():
                    parameter.normal_(0.0, scale)
    return net.eval()


PIXEL_UM = 0.1625
Z_UM = 0.4
CHANNELS = ("DAPI", "GFP")


def microscope_stack(sim_dir: Path, planes: int = 3) -> np.ndarray:
    """(planes, channels, Y, X) uint16 camera counts of a microscope file: channel GFP is the
    simulated widefield input, channel DAPI its confocal target, one simulated test pair per
    plane (up to `planes`)."""
    pairs = [tifffile.imread(p) for p in sorted((sim_dir / "test").glob("*.tif"))[:planes]]
    data = np.stack([[pair[0], pair[1]] for pair in pairs])
    scaled = 100 + 3000 * (data - data.min()) / (data.max() - data.min())
    return np.round(scaled).astype(np.uint16)


def write_czi(path: Path, data: np.ndarray) -> Path:
    """A Zeiss CZI of (Z, C, Y, X) data with channel names and pixel sizes (metres in the
    writer's call: it stores them as metres, as the CZI format does)."""
    from pylibCZIrw import czi as pyczi

    with pyczi.create_czi(str(path), exist_ok=True) as czi:
        for z in range(data.shape[0]):
            for c in range(data.shape[1]):
                czi.write(data[z, c][..., None], plane={"Z": z, "C": c})
        czi.write_metadata(
            document_name=path.stem,
            channel_names=dict(enumerate(CHANNELS[: data.shape[1]])),
            scale_x=PIXEL_UM * 1e-6,
            scale_y=PIXEL_UM * 1e-6,
            scale_z=Z_UM * 1e-6,
        )
    return path


def write_ome(path: Path, scenes: list[np.ndarray], axes: str = "ZCYX") -> Path:
    """An OME-TIFF with one image (scene) per array, channel names and pixel sizes."""
    metadata = {
        "axes": axes,
        "PhysicalSizeX": PIXEL_UM,
        "PhysicalSizeY": PIXEL_UM,
        "PhysicalSizeZ": Z_UM,
        "Channel": {"Name": list(CHANNELS)},
    }
    if "C" not in axes:
        del metadata["Channel"]
    with tifffile.TiffWriter(path, ome=True) as tif:
        for data in scenes:
            tif.write(data, metadata=metadata)
    return path
