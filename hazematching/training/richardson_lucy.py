"""Fitting the Richardson-Lucy baseline: the iteration count that serves paired images best.

The one choice of RL, the number of iterations (which trades sharpening against noise
amplification), is made on paired validation images; the model itself and its file are in
`model/richardson_lucy.py`.
"""

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.dataset import load_pairs, split_folder
from ..data.tiff import read_single
from ..errors import HazeMatchingError
from ..fileio import check_output_folder, output_folder, write_json
from ..metrics.distortion import range_invariant_psnr
from ..model.richardson_lucy import (
    MODEL_FILE,
    RichardsonLucy,
    RichardsonLucyModel,
    save_richardson_lucy,
)


def read_psf(path: Path) -> np.ndarray:
    """A 2D PSF TIFF (centred), non-negative with a positive sum."""
    planes = read_single(Path(path))
    if planes.shape[0] != 1:
        raise HazeMatchingError("a PSF must be a single 2D image", path)
    psf = planes[0].astype(np.float32)
    if not np.isfinite(psf).all() or (psf < 0).any() or psf.sum() <= 0:
        raise HazeMatchingError("a PSF must be finite, non-negative and not all zero", path)
    return psf


def fit_richardson_lucy(
    psf_path: Path,
    data_dir: Path,
    out_dir: Path,
    *,
    max_iterations: int = 100,
    progress: bool = True,
) -> RichardsonLucyModel:
    """Pick the iteration count with the best mean range-invariant PSNR on paired images.

    Uses `data_dir/val` when it exists. Writes `out_dir/richardson_lucy.pt` and
    `richardson_lucy.json` (the PSNR after every iteration count).
    """
    if max_iterations < 1:
        raise HazeMatchingError("max_iterations must be at least 1")
    psf = read_psf(psf_path)
    out_dir = check_output_folder(out_dir)
    folder = split_folder(data_dir, "val")
    pairs = load_pairs(folder)
    scores = np.zeros(max_iterations)
    images = list(zip(pairs.inputs, pairs.targets, strict=True))
    module = RichardsonLucy(torch.from_numpy(psf), max_iterations)
    for hazy, target in tqdm(images, desc="richardson-lucy", disable=not progress):
        with torch.no_grad():
            estimates = module.run(torch.from_numpy(hazy)[None, None], max_iterations, True)
        for count, estimate in enumerate(estimates):
            scores[count] += range_invariant_psnr(target, estimate[0, 0].numpy())
    scores /= len(images)
    best = int(np.argmax(scores)) + 1
    model = RichardsonLucyModel(psf, best, str(psf_path), [float(s) for s in scores])
    output_folder(out_dir)
    save_richardson_lucy(out_dir / MODEL_FILE, model)
    write_json(
        out_dir / "richardson_lucy.json",
        {
            "psf": str(psf_path),
            "data": str(folder),
            "iterations": best,
            "range_invariant_psnr_per_iteration": model.curve,
        },
    )
    return model
