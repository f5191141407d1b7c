"""Learning is real, tiling leaves no seams, calibration holds on held-out data.

One module-scoped model (600 steps on 48 simulated pairs of 96 px, about 2.5 minutes on 2 cores)
serves all tests; every image they evaluate is simulated apart from the training data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hazematching.config import NetworkConfig, SamplingConfig, SimulationConfig, TrainConfig
from hazematching.data.dataset import load_pairs
from hazematching.data.simulate import simulate, simulate_pair
from hazematching.evaluation.compute import evaluate
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler, tile_edges
from hazematching.metrics.distortion import range_invariant_psnr, seam_ratio
from hazematching.model.trained import TrainedModel, load_trained_model
from hazematching.training.loop import train
from hazematching.uncertainty.calibrate import calibrate

pytestmark = pytest.mark.slow

MARGIN_DB = 2.0
TILE = 64


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedModel, Path]:
    root = tmp_path_factory.mktemp("learning")
    simulate(root / "data", SimulationConfig(pairs=48, size=96, seed=1), progress=False)
    config = TrainConfig(
        steps=600,
        patch_size=TILE,
        batch_size=8,
        learning_rate=1e-3,
        ema_decay=0.99,
        val_every=100,
        device="cpu",
        network=NetworkConfig(channel_mult=(1, 2, 2), attention_downsample=(4,)),
    )
    result = train(root / "data", root / "run", config, progress=False)
    return load_trained_model(result.best), root / "data"


def test_mmse_of_held_out_images_is_closer_to_confocal_than_hazy_input(learned) -> None:
    model, data = learned
    sampler = build_sampler(model, SamplingConfig(samples=8, steps=10), torch.device("cpu"))
    test = load_pairs(data / "test")  # never seen in training or validation
    assert len(test) >= 4
    hazy_psnr, mmse_psnr = [], []
    for hazy, target in zip(test.inputs, test.targets, strict=True):
        mmse = predict_planes(model, sampler, hazy[None]).mmse[0]
        hazy_psnr.append(range_invariant_psnr(target, hazy))
        mmse_psnr.append(range_invariant_psnr(target, mmse))
    gain = float(np.mean(mmse_psnr) - np.mean(hazy_psnr))
    print(
        f"held-out range-invariant PSNR: hazy {np.mean(hazy_psnr):.2f} dB, "
        f"MMSE {np.mean(mmse_psnr):.2f} dB, gain {gain:.2f} dB over {len(test)} images"
    )
    assert gain >= MARGIN_DB


def _samples(model: TrainedModel, hazy: np.ndarray, **sampling: object) -> np.ndarray:
    """(K, Y, X) single posterior samples of one plane."""
    config = SamplingConfig(samples=4, steps=10, keep_samples=True, **sampling)
    sampler = build_sampler(model, config, torch.device("cpu"))
    return predict_planes(model, sampler, hazy[None]).samples[0]


def test_tiled_samples_have_no_seams_where_pasted_tiles_do(learned) -> None:
    model, _ = learned
    size = 256
    tiled, pasted = [], []
    for index in range(3):  # seeds apart from the training simulation (seed 1)
        hazy = simulate_pair(SimulationConfig(pairs=1, size=size, seed=100 + index), 0).widefield
        tiled.append(_samples(model, hazy, tile=TILE))
        # the naive way: independent samples of non-overlapping tiles, pasted side by side
        naive = np.zeros_like(tiled[-1])
        for k, (row, col) in enumerate(
            (r, c) for r in range(0, size, TILE) for c in range(0, size, TILE)
        ):
            crop = hazy[row : row + TILE, col : col + TILE]
            naive[:, row : row + TILE, col : col + TILE] = _samples(model, crop, tile=0, seed=k)
        pasted.append(naive)
    sampler = build_sampler(model, SamplingConfig(tile=TILE), torch.device("cpu"))
    edges = tile_edges(sampler, size)
    ours = seam_ratio(np.stack(tiled), edges, edges)
    naive_edges = list(range(TILE, size, TILE))
    theirs = seam_ratio(np.stack(pasted), naive_edges, naive_edges)
    print(f"seam ratio: blended tiles {ours:.3f} at {edges}, pasted tiles {theirs:.3f}")
    assert ours <= 1.05
    assert theirs >= 1.5


def test_calibration_fitted_on_val_improves_held_out_test(learned, tmp_path: Path) -> None:
    """Fit on data/val, measure on data/test (both unseen in training): closer to y = x."""
    model, data = learned
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(Path(model.source).read_bytes())
    sampling = SamplingConfig(samples=8, steps=10)
    calibrate(checkpoint, data, tmp_path / "cal", sampling, bins=10, progress=False)
    result = evaluate(checkpoint, data, tmp_path / "report", sampling, bins=10, progress=False)
    numbers = result.overall["calibration"]
    print(
        f"held-out calibration error: raw {numbers['raw_error']:.3f}, calibrated "
        f"{numbers['calibrated_error']:.3f}"
    )
    assert numbers["calibrated_error"] < numbers["raw_error"]
