"""Reflow distillation: a few-step student learns the couplings of a many-step teacher.

A guided flow sampled with T Euler steps maps each start noise x_0 (and hazy guide) to one
posterior sample x_1. Few Euler steps on that same network give blurred samples, because the
network's velocity at t = 0 points at the posterior mean, not at a sample. Rectified-flow reflow
(Liu et al., ICLR 2023) retrains the flow on the teacher's own pairs (x_0, x_1^teacher): the
straight path between them is the student's target, so its Euler steps land on the teacher's
sample, not on the mean. The student is trained only at the times it is sampled at (its
`time_grid` of 1 to 4 steps), starts from the teacher's weights and uses its normalisation.

The pairs are drawn once (patches, noise and the teacher's samples, all seeded by the run's seed)
and cached in the run folder, so a resumed run does not integrate the teacher again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.dataset import PatchSampler
from ..errors import HazeMatchingError
from ..fileio import atomic_path

PAIRS_FILE = "reflow_pairs.pt"
PAIR_STREAMS = {"train": 2, "val": 3}  # random streams of the pairs (training uses 0 and 1)
_TEACHER_BATCH = 16
_FIELDS = ("hazy", "noise", "sample", "target")  # what a cache stores of each set of pairs


@dataclass(frozen=True)
class TeacherPairs:
    """Hazy patches, start noise, the teacher's sample from that noise and the real clean patch
    (what an MMSE head learns from), each (N, 1, P, P)."""

    hazy: Tensor
    noise: Tensor
    sample: Tensor
    target: Tensor

    def __len__(self) -> int:
        return self.hazy.shape[0]

    def batch(self, rng: np.random.Generator, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """`size` random pairs (hazy, noise, sample, target), each under one random
        flip/rotation applied to all four.

        The teacher's map is equivariant to the dihedral group up to its training error (it saw
        augmented patches), and the transformed noise is still white, so the 8 variants of a
        pair are valid pairs.
        """
        index = rng.integers(0, len(self), size)
        transform = rng.integers(0, 8, size)
        parts = []
        for field in (self.hazy, self.noise, self.sample, self.target):
            picked = [_dihedral(field[i], int(k)) for i, k in zip(index, transform, strict=True)]
            parts.append(torch.stack(picked))
        return parts[0], parts[1], parts[2], parts[3]


def _dihedral(patch: Tensor, transform: int) -> Tensor:
    """One of the 8 flips/rotations of a (1, P, P) patch."""
    rotated = torch.rot90(patch, k=transform % 4, dims=(-2, -1))
    return torch.flip(rotated, dims=(-1,)) if transform >= 4 else rotated


def integrate_teacher(net: nn.Module, hazy: Tensor, noise: Tensor, steps: int) -> Tensor:
    """Euler-integrate dx/dt = v(t, [x, hazy]) from x = noise at t = 0 to t = 1 in `steps` steps.

    Exactly the update of the packaged sampler on an untiled patch.
    """
    x = noise
    with torch.no_grad():
        for step in range(steps):
            t = torch.full([x.shape[0]], step / steps, dtype=x.dtype, device=x.device)
            x = x + net(t, torch.cat([x, hazy], dim=1))[:, :1] * (1.0 / steps)
    return x


def draw_pairs(
    teacher: nn.Module,
    patches: PatchSampler,
    count: int,
    steps: int,
    seed: int,
    stream: int,
    device: torch.device,
    progress: bool,
) -> TeacherPairs:
    """`count` teacher pairs on random patches; every draw comes from (seed, stream)."""
    rng = np.random.default_rng([seed, stream])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    hazy_parts, noise_parts, sample_parts, target_parts = [], [], [], []
    bar = tqdm(total=count, desc="teacher samples", unit="pair", disable=not progress)
    for first in range(0, count, _TEACHER_BATCH):
        size = min(_TEACHER_BATCH, count - first)
        hazy, target = patches.sample(rng, size)
        hazy_t = torch.from_numpy(hazy)
        noise = torch.randn(hazy_t.shape, generator=generator)
        sample = integrate_teacher(teacher, hazy_t.to(device), noise.to(device), steps).cpu()
        hazy_parts.append(hazy_t)
        noise_parts.append(noise)
        sample_parts.append(sample)
        target_parts.append(torch.from_numpy(target))
        bar.update(size)
    bar.close()
    parts = (hazy_parts, noise_parts, sample_parts, target_parts)
    return TeacherPairs(*(torch.cat(part) for part in parts))


def cached_pairs(
    run_dir: Path, key: dict[str, object], make: dict[str, Callable[[], TeacherPairs]]
) -> dict[str, TeacherPairs]:
    """Pairs stored in run_dir for exactly this `key`, or drawn by the callables in `make`.

    `key` records what the pairs depend on (teacher file and step, counts, steps, seed); a
    cache written for another key is refused rather than silently reused.
    """
    path = Path(run_dir) / PAIRS_FILE
    if path.is_file():
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            message = f"unreadable reflow cache ({type(error).__name__})"
            raise HazeMatchingError(message, path) from error
        if raw.get("key") != key or set(raw["pairs"].get("train", {})) != set(_FIELDS):
            raise HazeMatchingError("reflow cache of another teacher or setting; delete it", path)
        return {name: TeacherPairs(**fields) for name, fields in raw["pairs"].items()}
    pairs = {name: draw() for name, draw in make.items()}
    stored = {name: {f: getattr(p, f) for f in _FIELDS} for name, p in pairs.items()}
    with atomic_path(path) as tmp:
        torch.save({"key": key, "pairs": stored}, tmp)
    return pairs
