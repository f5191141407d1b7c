"""Learning is real: after a few CPU minutes the MMSE of held-out inputs beats the hazy input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hazematching.config import NetworkConfig, SamplingConfig, SimulationConfig, TrainConfig
from hazematching.data.dataset import load_pairs
from hazematching.data.simulate import simulate
from hazematching.metrics import range_invariant_psnr
from hazematching.predict import build_sampler, load_trained_model, predict_planes
from hazematching.train import train

MARGIN_DB = 2.0


@pytest.mark.slow
def test_mmse_of_held_out_images_is_closer_to_confocal_than_hazy_input(tmp_path: Path) -> None:
    simulate(tmp_path / "data", SimulationConfig(pairs=48, size=96, seed=1), progress=False)
    config = TrainConfig(
        steps=600,
        patch_size=64,
        batch_size=8,
        learning_rate=1e-3,
        ema_decay=0.99,
        val_every=100,
        device="cpu",
        network=NetworkConfig(channel_mult=(1, 2, 2), attention_downsample=(4,)),
    )
    result = train(tmp_path / "data", tmp_path / "run", config, progress=False)
    model = load_trained_model(result.best)
    sampler = build_sampler(model, SamplingConfig(samples=8, steps=10), torch.device("cpu"))

    test = load_pairs(tmp_path / "data" / "test")  # never seen in training or validation
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
