"""Synthetic pairs from unpaired data: the learned blur and a fitted noise model applied to the
confocal images, so that HazeMatching, which needs pairs, can be trained without any.

Each confocal image x becomes the pair (x, n(h * x)): h the blur kernel an unpaired (cyclegan)
run learned, applied in the run's normalised units and mapped back to widefield intensities, and n
Poisson-Gaussian noise whose gain and offset are fitted to the real widefield images. The pairs
are written as 2-channel TIFFs (channel 0 confocal, channel 1 widefield), the layout
`hazematching train` reads; `synthesis.json` records the model, the noise model and the seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .._version import __version__
from ..data.noise_model import NoiseModel
from ..data.tiff import INPUT_CHANNEL, TARGET_CHANNEL, write_tiff
from ..data.unpaired import load_unpaired
from ..errors import HazeMatchingError
from ..fileio import check_output_folder, output_folder, write_json
from ..model.checkpoint import load_checkpoint, resolve_checkpoint_path
from .kernel import BlurKernel

MANIFEST = "synthesis.json"


def synthesize_pairs(
    model: Path,
    data_dir: Path,
    out_dir: Path,
    *,
    copies: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write `copies` synthetic pairs per confocal plane of `data_dir` into `out_dir`.

    One file per confocal file holds all of its pairs (a stack of planes if more than one).
    Every copy has its own noise draw, from a generator seeded with (seed, plane, copy), so the
    same inputs and seed give the same files. Returns the path of `synthesis.json`, written last.
    """
    if copies < 1:
        raise HazeMatchingError(f"copies must be at least 1, got {copies}")
    checkpoint_path = resolve_checkpoint_path(Path(model))
    checkpoint = load_checkpoint(checkpoint_path)
    if checkpoint.config.method != "cyclegan" or "kernel" not in checkpoint.extra:
        raise HazeMatchingError(
            f"synthesis needs the blur kernel of a cyclegan run, not a "
            f"'{checkpoint.config.method}' model",
            checkpoint_path,
        )
    out_dir = check_output_folder(out_dir)
    if (out_dir / MANIFEST).exists() or list(out_dir.glob("synthetic_*.tif")):
        raise HazeMatchingError("already holds synthetic pairs; choose a new folder", out_dir)
    data = load_unpaired(data_dir)
    noise = NoiseModel.fit(data.widefield.planes)
    size = checkpoint.config.cyclegan.kernel_size
    kernel = BlurKernel(np.zeros((size, size), np.float32), learn_shape=True)
    kernel.load_state_dict(checkpoint.extra["kernel"])
    kernel.eval()
    intensities = checkpoint.normalization.intensity_map()  # unpaired models: dataset mode
    output_folder(out_dir)
    records = []
    groups: dict[Path, list[tuple[int, np.ndarray]]] = {}
    for index, (plane, source) in enumerate(
        zip(data.confocal.planes, data.confocal.sources, strict=True)
    ):
        groups.setdefault(source, []).append((index, plane))
    bar = tqdm(
        total=len(data.confocal) * copies, desc="synthesize", unit="pair", disable=not progress
    )
    for number, (source, planes) in enumerate(sorted(groups.items())):
        stacks = []
        for index, confocal in planes:
            with torch.no_grad():
                sharp = torch.from_numpy(intensities.normalize_target(confocal))
                blurred = kernel(sharp[None, None])
            clean = intensities.denormalize_input(blurred[0, 0].numpy())
            for copy in range(copies):
                rng = np.random.default_rng([seed, index, copy])
                stack = np.empty((2, *confocal.shape), dtype=np.float32)
                stack[TARGET_CHANNEL] = confocal
                stack[INPUT_CHANNEL] = noise.sample(clean, rng)
                stacks.append(stack)
                bar.update(1)
        # every copy and plane of one confocal file in one file, so that a validation split by
        # file never puts the same target on both sides
        name = f"synthetic_{number:05d}.tif"
        if len(stacks) == 1:
            write_tiff(out_dir / name, stacks[0], "CYX", ["confocal", "widefield (synthetic)"])
        else:
            write_tiff(
                out_dir / name, np.stack(stacks), "ZCYX", ["confocal", "widefield (synthetic)"]
            )
        records.append({"file": name, "confocal": str(source), "planes": len(stacks), "seed": seed})
    bar.close()
    manifest = out_dir / MANIFEST
    write_json(
        manifest,
        {
            "generator": f"hazematching {__version__}",
            "model": str(checkpoint_path),
            "data_dir": str(data_dir),
            "noise_model": noise.model_dump(mode="json"),
            "kernel_size": size,
            "copies": copies,
            "seed": seed,
            "pairs": records,
        },
    )
    return manifest
