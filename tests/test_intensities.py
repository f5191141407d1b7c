"""Images in their cameras' own units: per-image normalisation, the guard, camera augmentation,
fine-tuning from a model (`--init`) and inputs without spread.

The session's tiny model (`trained`) is per-image normalised, the default of new trainings; a
second tiny model here is dataset-normalised.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from hazematching.config import BlockConfig, IntensityAugmentation, SamplingConfig
from hazematching.data.camera import Camera, RankedPercentile, draw_camera
from hazematching.data.dataset import PairedImages, PatchSampler, load_pairs, split_folder
from hazematching.data.normalization import DatasetNormalization, PerImageNormalization
from hazematching.errors import HazeMatchingError, IntensityRangeWarning
from hazematching.inference.predict import predict
from hazematching.inference.sampling import build_sampler, tile_edges
from hazematching.metrics.distortion import seam_ratio
from hazematching.model.checkpoint import load_checkpoint
from hazematching.model.trained import load_trained_model
from hazematching.training.loop import TrainResult, train
from tests.helpers import run, tiny_train_config

SAMPLING = SamplingConfig(samples=3, steps=2, seed=1)
#: (gain, offset) pairs over three orders of magnitude of gain, with camera-like offsets
AFFINE = [(1e-2, 0.0), (1.0, 100.0), (10.0, 0.0), (10.0, 1000.0)]


def _hazy(sim_dir: Path) -> np.ndarray:
    return load_pairs(split_folder(sim_dir, "test")).inputs[0]


def _predict(model: Path, image: np.ndarray, folder: Path, **options: object) -> np.ndarray:
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "in.tif", image.astype(np.float32))
    (written,) = predict(model, [folder / "in.tif"], folder / "out", progress=False, **options)
    if written.suffix == ".tif":
        return tifffile.imread(written)
    raise AssertionError(written)


def _assert_equivariant(base: np.ndarray, moved: np.ndarray, gain: float, offset: float) -> None:
    """MMSE(a x + b) == a MMSE(x) + b and std(a x + b) == |a| std(x) to float tolerance."""
    scale = abs(gain) * float(np.abs(base[:2]).max())
    np.testing.assert_allclose(moved[0], gain * base[0] + offset, rtol=0, atol=2e-4 * scale)
    np.testing.assert_allclose(moved[1], abs(gain) * base[1], rtol=0, atol=2e-4 * scale)


# --- per-image models are equivariant to the camera's gain and offset ----------------------------


def test_new_trainings_normalise_per_image(trained: TrainResult) -> None:
    checkpoint = load_checkpoint(trained.best)
    assert isinstance(checkpoint.normalization, PerImageNormalization)
    assert checkpoint.config.normalization_mode == "per-image"


@pytest.mark.parametrize("bits", [None, 8, 12, 16])
def test_per_image_mmse_and_std_follow_gain_and_offset(
    trained: TrainResult, sim_dir: Path, tmp_path: Path, bits: int | None
) -> None:
    """Through the library path, on the image as simulated and as 8/12/16-bit cameras write it
    (rounded, clipped, with a baseline)."""
    hazy = _hazy(sim_dir)
    if bits is not None:
        full = 2.0**bits - 1
        hazy = Camera(0.7 * full / float(hazy.max()), 0.02 * full, full).record(hazy)
    base = _predict(trained.best, hazy, tmp_path / "base", sampling=SAMPLING)
    assert np.isfinite(base).all() and base[1].max() > 0
    for k, (gain, offset) in enumerate(AFFINE):
        moved = _predict(trained.best, gain * hazy + offset, tmp_path / str(k), sampling=SAMPLING)
        _assert_equivariant(base, moved, gain, offset)


def test_block_path_normalises_with_the_whole_image(
    trained: TrainResult, sim_dir: Path, tmp_path: Path
) -> None:
    """Blocks map intensities with the whole plane's percentiles, computed once: on an image
    whose right half is 20x brighter (so each block's own percentiles would differ), the block
    path gives the whole-image path's result up to the blending of blocks (per-block maps
    differ by about 7 % of the MMSE's spread and 8 % of the std), and it is equivariant."""
    hazy = np.tile(_hazy(sim_dir), (2, 2))
    hazy[:, 48:] *= 20
    blocks = BlockConfig(block=48, halo=16, above=1)
    base = _predict(trained.best, hazy, tmp_path / "base", sampling=SAMPLING, blocks=blocks)
    whole = _predict(trained.best, hazy, tmp_path / "whole", sampling=SAMPLING)
    assert np.abs(base[0] - whole[0]).mean() < 0.01 * whole[0].std()
    assert np.abs(base[1] - whole[1]).mean() < 0.01 * whole[1].mean()
    gain, offset = 300.0, 100.0
    moved = _predict(
        trained.best, gain * hazy + offset, tmp_path / "moved", sampling=SAMPLING, blocks=blocks
    )
    _assert_equivariant(base, moved, gain, offset)


def test_tile_seams_at_16_bit_scale_are_those_in_range(
    trained: TrainResult, sim_dir: Path, tmp_path: Path
) -> None:
    """The std's jump across the sampler's tile borders relative to elsewhere, in range and at
    16-bit scale with a baseline: the same for a per-image model, which sees the same inputs.
    The tiny model shows no seams to speak of either way, so the ratios must agree to 1e-6: a
    dataset-normalised tiny model's differ by about 1e-3, an unnormalised one's by more."""
    hazy = np.tile(_hazy(sim_dir), (2, 2))
    sampling = SAMPLING.model_copy(update={"tile": 32, "overlap": 8})
    in_range = _predict(trained.best, hazy, tmp_path / "a", sampling=sampling)
    bright = 60000.0 / float(hazy.max())
    high = _predict(trained.best, hazy * bright + 100, tmp_path / "b", sampling=sampling)
    model = load_trained_model(trained.best)
    sampler = build_sampler(model, sampling, torch.device("cpu"))
    edges = tile_edges(sampler, hazy.shape[0])
    assert edges, "the image must be tiled for this test"
    ratio_in_range = seam_ratio(in_range[1], edges, edges)
    ratio_high = seam_ratio(high[1], edges, edges)
    assert ratio_high == pytest.approx(ratio_in_range, rel=1e-6)


# --- inputs without spread ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["constant", "zeros", "two levels", "all saturated", "flat tile inside"]
)
def test_degenerate_images_give_finite_results(
    trained: TrainResult, sim_dir: Path, tmp_path: Path, kind: str
) -> None:
    hazy = _hazy(sim_dir)
    image = {
        "constant": np.full(hazy.shape, 812.0),
        "zeros": np.zeros(hazy.shape),
        "two levels": np.where(hazy > np.median(hazy), 4095.0, 100.0),
        "all saturated": np.full(hazy.shape, 65535.0),
        "flat tile inside": np.where(np.indices(hazy.shape)[0] < 24, 200.0, hazy),
    }[kind]
    result = _predict(trained.best, image, tmp_path / "p", sampling=SAMPLING)
    assert np.isfinite(result).all() and (result[1] >= 0).all()


# --- the guard of dataset models ------------------------------------------------------------------


def test_dataset_models_record_the_training_input_range(dataset_model: TrainResult) -> None:
    norm = load_checkpoint(dataset_model.best).normalization
    assert isinstance(norm, DatasetNormalization) and norm.input_range is not None
    low, high = norm.input_range
    assert low < 0 < high  # z-scores of the training inputs straddle their mean


def test_guard_warns_on_a_16_bit_image_and_stays_quiet_in_range(
    dataset_model: TrainResult, sim_dir: Path, tmp_path: Path
) -> None:
    hazy = _hazy(sim_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntensityRangeWarning)
        _predict(dataset_model.best, hazy, tmp_path / "in", sampling=SAMPLING)
    record = json.loads((tmp_path / "in" / "out" / "predict.json").read_text())
    assert record["warnings"] == []
    bright = hazy * (60000.0 / float(hazy.max())) + 100
    with pytest.warns(IntensityRangeWarning, match="far outside the training inputs"):
        _predict(dataset_model.best, bright, tmp_path / "out", sampling=SAMPLING)
    record = json.loads((tmp_path / "out" / "out" / "predict.json").read_text())
    (warning,) = record["warnings"]
    assert "in.tif" in warning and "far outside" in warning


def test_guard_is_one_line_on_the_command_line(
    dataset_model: TrainResult, sim_dir: Path, tmp_path: Path
) -> None:
    hazy = _hazy(sim_dir)
    tifffile.imwrite(tmp_path / "bright.tif", hazy * (60000.0 / float(hazy.max())) + 100)
    done = run(
        "predict", dataset_model.best, tmp_path / "bright.tif", "--out", tmp_path / "o",
        "--samples", "2", "--steps", "1", "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "bright.tif" in lines[0] and "far outside" in lines[0]


def test_per_image_models_never_warn(trained: TrainResult, sim_dir: Path) -> None:
    norm = load_checkpoint(trained.best).normalization
    assert norm.range_warning(_hazy(sim_dir) * 1e4 + 1e3) is None


# --- camera-like augmentation ---------------------------------------------------------------------


def test_ranked_percentiles_give_the_recorded_images_percentiles() -> None:
    image = np.random.default_rng(2).gamma(2.0, 30.0, (40, 52)).astype(np.float32)
    camera = Camera(gain=41.3, baseline=100.0, full_scale=4095.0)
    recorded = camera.record(image)
    for q in (0.1, 1.0, 50.0, 99.8):
        expected = np.percentile(recorded.astype(np.float64), q)
        assert RankedPercentile.of(image, q).value(camera) == pytest.approx(expected, abs=1e-9)


def test_augmented_patches_are_seeded_and_normalised_like_the_recording() -> None:
    rng = np.random.default_rng(5)
    image = rng.gamma(2.0, 30.0, (40, 40)).astype(np.float32)
    pairs = PairedImages([image], [image * 2], [Path("x.tif")])
    augmentation = IntensityAugmentation(probability=1.0, saturation_probability=0.0)
    sampler = PatchSampler(pairs, PerImageNormalization(), 40, augmentation)
    a = sampler.sample(np.random.default_rng(1), 6)
    b = sampler.sample(np.random.default_rng(1), 6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    plain = PatchSampler(pairs, PerImageNormalization(), 40).sample(np.random.default_rng(1), 6)
    assert not np.array_equal(a[0], plain[0])  # quantised recordings, not the image itself
    # a patch covering the whole image: its normalised 1st/99.8th percentiles are 0 and 1,
    # as they are for the recording of the whole image
    for patch in a[0][:, 0]:
        low, high = np.percentile(patch.astype(np.float64), [1.0, 99.8])
        assert low == pytest.approx(0.0, abs=1e-6) and high == pytest.approx(1.0, abs=1e-6)


def test_camera_draws_cover_the_bit_depths_and_saturate_on_request() -> None:
    rng = np.random.default_rng(0)
    augmentation = IntensityAugmentation(probability=1.0, saturation_probability=0.5)
    cameras = [draw_camera(rng, augmentation, 100.0, 120.0) for _ in range(200)]
    assert {c.full_scale for c in cameras if c} == {255.0, 4095.0, 65535.0}
    saturating = [c for c in cameras if c and c.gain * 120.0 + c.baseline >= c.full_scale - 1e-6]
    assert 60 < len(saturating) < 140


# --- fine-tuning from a model ---------------------------------------------------------------------


def test_init_starts_from_the_models_weights_and_mode(
    trained: TrainResult, sim_dir: Path, tmp_path: Path
) -> None:
    start = load_checkpoint(trained.best)
    config = tiny_train_config(steps=1, val_every=1, learning_rate=1e-12, init=str(trained.best))
    tuned = load_checkpoint(train(sim_dir, tmp_path / "tuned", config, progress=False).best)
    assert tuned.normalization == start.normalization
    for name, tensor in start.ema.items():
        assert torch.allclose(tuned.model[name], tensor, atol=1e-8), name
    # told otherwise, the mode changes (with the statistics of the new pairs)
    dataset = tiny_train_config(
        steps=1, val_every=1, init=str(trained.best), normalization="dataset"
    )
    retuned = load_checkpoint(train(sim_dir, tmp_path / "d", dataset, progress=False).best)
    assert isinstance(retuned.normalization, DatasetNormalization)


def test_init_refuses_a_model_it_cannot_start_from(
    trained: TrainResult, sim_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(HazeMatchingError, match="fine-tune it with --method hazematching"):
        train(
            sim_dir,
            tmp_path / "u",
            tiny_train_config(method="unet", init=str(trained.best)),
            progress=False,
        )
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    done = run("train", sim_dir, "--out", tmp_path / "j", "--init", tmp_path / "junk.pt")
    assert done.returncode == 1 and "junk.pt" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "j").exists()
