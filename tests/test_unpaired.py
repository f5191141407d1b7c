"""Training without pairs: unpaired data, the CycleGAN with a blur kernel, synthetic pairs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from hazematching.config import CycleGANConfig, SamplingConfig, SimulationConfig, TrainConfig
from hazematching.data.noise_model import NoiseModel
from hazematching.data.simulate import simulate, simulate_pair
from hazematching.data.tiff import read_pair, read_single
from hazematching.errors import HazeMatchingError
from hazematching.export.check import check_package
from hazematching.export.package import export_package
from hazematching.export.recipe import Maintainer, default_recipe
from hazematching.inference.planes import predict_planes
from hazematching.inference.sampling import build_sampler
from hazematching.model.checkpoint import load_checkpoint, save_checkpoint
from hazematching.model.trained import load_trained_model
from hazematching.training.cyclegan import (
    HistoryBuffer,
    cycle,
    generate,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from hazematching.training.kernel import BlurKernel, gaussian_kernel, kernel_distance, read_psf
from hazematching.training.loop import TrainResult, train
from hazematching.training.synthetic_pairs import synthesize_pairs
from tests.helpers import LinearField, invoke, tiny_train_config

KERNEL = 7


def _cyclegan_config(**overrides: object) -> TrainConfig:
    """The tiny network trained as a CycleGAN with a 7 x 7 kernel and 2 discriminator scales."""
    values: dict[str, object] = {
        "method": "cyclegan",
        "learning_rate": 1e-3,
        "cyclegan": CycleGANConfig(kernel_size=KERNEL, scales=2, history=4),
    }
    return tiny_train_config(**{**values, **overrides})


@pytest.fixture(scope="module")
def unpaired_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 widefield and 6 confocal images of 32 px, each of its own sample."""
    out = tmp_path_factory.mktemp("unpaired") / "data"
    simulate(out, SimulationConfig(pairs=6, size=32, seed=5, unpaired=True), progress=False)
    return out


@pytest.fixture(scope="module")
def cyclegan_run(unpaired_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    run = tmp_path_factory.mktemp("cyclegan") / "run"
    return train(unpaired_dir, run, _cyclegan_config(), progress=False)


def _convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True 2D convolution with mirror padding, written out pixel by pixel (the reference)."""
    r = kernel.shape[0] // 2
    padded = np.pad(image, r, mode="reflect")
    out = np.zeros_like(image, dtype=np.float64)
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            window = padded[i : i + 2 * r + 1, j : j + 2 * r + 1]
            out[i, j] = (window * kernel[::-1, ::-1]).sum()
    return out


# --- simulation --------------------------------------------------------------------------------


def test_simulate_unpaired_writes_each_side_from_its_own_samples(unpaired_dir: Path) -> None:
    widefield = sorted((unpaired_dir / "widefield").glob("*.tif"))
    confocal = sorted((unpaired_dir / "confocal").glob("*.tif"))
    assert [p.name for p in widefield] == [f"sample_{i:05d}.tif" for i in (0, 2, 4, 6, 8, 10)]
    assert [p.name for p in confocal] == [f"sample_{i:05d}.tif" for i in (1, 3, 5, 7, 9, 11)]
    config = SimulationConfig(pairs=6, size=32, seed=5, unpaired=True)
    np.testing.assert_array_equal(read_single(widefield[1])[0], simulate_pair(config, 2).widefield)
    np.testing.assert_array_equal(read_single(confocal[0])[0], simulate_pair(config, 1).confocal)
    manifest = json.loads((unpaired_dir / "simulation.json").read_text())
    assert manifest["config"]["unpaired"] is True and len(manifest["images"]) == 12
    assert (unpaired_dir / "widefield_psf.tif").is_file()


# --- losses, kernel, buffer --------------------------------------------------------------------


def test_cycle_losses_equal_hand_computed_values() -> None:
    """G(y) = y + 0.5 y (v = 0.5 state) and a 3 x 3 kernel, on 5 x 5 images."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 5)).astype(np.float32)
    y = rng.normal(size=(5, 5)).astype(np.float32)
    h = np.array([[0.0, 0.1, 0.0], [0.2, 0.5, 0.1], [0.0, 0.3, 0.0]], np.float32)
    kernel = BlurKernel(h, learn_shape=True).requires_grad_(False)
    result = cycle(
        LinearField(0.5), kernel, torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None]
    )
    sharp_by_hand = np.abs(1.5 * _convolve(x, h) - x).mean()  # |G(h * x) - x|
    hazy_by_hand = np.abs(_convolve(1.5 * y, h) - y).mean()  # |h * G(y) - y|
    assert float(result.loss_sharp) == pytest.approx(sharp_by_hand, rel=1e-5)
    assert float(result.loss_hazy) == pytest.approx(hazy_by_hand, rel=1e-5)
    np.testing.assert_allclose(result.fake_sharp[0, 0].numpy(), 1.5 * y, rtol=1e-6)
    np.testing.assert_allclose(result.fake_hazy[0, 0].numpy(), _convolve(x, h), atol=1e-6)
    # a generator that exactly inverts the kernel closes both cycles
    exact = cycle(
        LinearField(-0.5),
        BlurKernel(np.pad([[2.0]], 1), learn_shape=True).requires_grad_(False),
        torch.from_numpy(x)[None, None],
        torch.from_numpy(y)[None, None],
    )
    assert float(exact.loss_sharp) == 0.0 and float(exact.loss_hazy) == 0.0


def test_lsgan_losses_equal_hand_computed_values() -> None:
    real = [torch.full((2, 1, 3, 3), 0.8), torch.full((2, 1, 2, 2), 0.6)]
    fake = [torch.full((2, 1, 3, 3), 0.3), torch.full((2, 1, 2, 2), -0.2)]
    assert float(lsgan_generator_loss(fake)) == pytest.approx(0.7**2 + 1.2**2)
    expected = 0.5 * (0.2**2 + 0.3**2) + 0.5 * (0.4**2 + 0.2**2)
    assert float(lsgan_discriminator_loss(real, fake)) == pytest.approx(expected)


def test_blur_kernel_is_a_true_convolution_with_mirror_padding() -> None:
    h = np.zeros((5, 5), np.float32)
    h[0, 1], h[2, 2], h[3, 4] = 0.5, 0.3, 0.2  # asymmetric: a flip would show
    image = np.random.default_rng(1).random((12, 9)).astype(np.float32)
    out = BlurKernel(h, learn_shape=True)(torch.from_numpy(image)[None, None])[0, 0]
    np.testing.assert_allclose(out.detach().numpy(), _convolve(image, h), atol=1e-6)
    # non-blind: the shape is fixed, only the gain is a parameter
    fixed = BlurKernel(h, learn_shape=False)
    assert [name for name, _ in fixed.named_parameters()] == ["log_gain"]


def test_learned_kernel_recovers_a_known_blur() -> None:
    """Fitting h * x = y on images blurred with a known asymmetric 5 x 5 kernel recovers it."""
    rng = np.random.default_rng(2)
    truth = gaussian_kernel(5, 1.0)
    truth[1, 3] += 0.06  # asymmetric, the peak still at the centre
    truth /= truth.sum()
    images = rng.random((8, 24, 24)).astype(np.float32)
    blurred = np.stack([_convolve(im, truth) for im in images]).astype(np.float32)
    start = gaussian_kernel(5, 2.0)
    kernel = BlurKernel(start, learn_shape=True)
    optimizer = torch.optim.Adam(kernel.parameters(), lr=5e-3)
    x, y = torch.from_numpy(images)[:, None], torch.from_numpy(blurred)[:, None]
    for _ in range(400):
        loss = (kernel(x) - y).abs().mean() + 1e-5 * kernel.l1()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    padded_truth = np.pad(truth, 10)  # kernel_distance crops the reference around its peak
    assert kernel_distance(start, padded_truth) > 0.4
    assert kernel_distance(kernel.unit_sum(), padded_truth) < 0.05


def test_history_buffer_fills_then_swaps_reproducibly() -> None:
    batches = [torch.full((2, 1, 2, 2), float(i)) for i in range(6)]

    def shown(seed: int) -> list[float]:
        buffer, rng, values = HistoryBuffer(3), np.random.default_rng(seed), []
        for batch in batches:
            values += buffer.query(rng, batch)[:, 0, 0, 0].tolist()
        assert len(buffer.patches) == 3
        return values

    first = shown(0)
    assert first[:3] == [0.0, 0.0, 1.0]  # while filling, each new patch is shown
    assert any(v < i // 2 for i, v in enumerate(first) if i >= 4)  # older patches come back
    assert first == shown(0) and first != shown(1)
    assert HistoryBuffer(0).query(np.random.default_rng(0), batches[5]).equal(batches[5])


def test_noise_model_recovers_gain_and_offset() -> None:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:96, :96]
    gain, read_std = 2.0, 4.0
    images = []
    for i in range(8):
        clean = 5 + 150 * np.exp(-((yy - 40 - 3 * i) ** 2 + (xx - 50) ** 2) / (2 * 25**2))
        images.append(gain * rng.poisson(clean / gain) + rng.normal(0, read_std, clean.shape))
    model = NoiseModel.fit(images)
    assert model.gain == pytest.approx(gain, rel=0.15)
    assert model.offset == pytest.approx(read_std**2, abs=8.0)
    again = model.sample(np.full((64, 64), 100.0), np.random.default_rng(0))
    assert again.var() == pytest.approx(model.gain * 100 + model.offset, rel=0.1)


# --- training, prediction, export --------------------------------------------------------------


def test_cyclegan_run_writes_generator_kernel_and_report(
    cyclegan_run: TrainResult, unpaired_dir: Path
) -> None:
    run = cyclegan_run.best.parent
    checkpoint = load_checkpoint(cyclegan_run.best)
    assert checkpoint.config.method == "cyclegan" and checkpoint.step == 8
    assert set(checkpoint.extra) == {
        "kernel",
        "discriminators",
        "discriminator_optimizer",
        "history",
    }
    assert checkpoint.data["unpaired"] and checkpoint.data["train_planes"]["widefield"] == 5
    kernel = tifffile.imread(run / "kernel.tif")
    assert kernel.shape == (KERNEL, KERNEL) and kernel.sum() == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(kernel, gaussian_kernel(KERNEL, 2.0))  # it was learned
    report = json.loads((run / "kernel.json").read_text())
    assert report["distance_initial"] == pytest.approx(
        kernel_distance(
            gaussian_kernel(KERNEL, 2.0), read_single(unpaired_dir / "widefield_psf.tif")[0]
        )
    )
    assert report["distance_learned"] == pytest.approx(
        kernel_distance(kernel, read_single(unpaired_dir / "widefield_psf.tif")[0])
    )  # the report is of the kernel saved with the model
    assert (run / "kernel.png").stat().st_size > 0
    assert [h["step"] for h in cyclegan_run.history] == [4, 8]


def test_cyclegan_resume_continues_exactly(unpaired_dir: Path, tmp_path: Path) -> None:
    straight = train(
        unpaired_dir, tmp_path / "a", _cyclegan_config(steps=4, val_every=2), progress=False
    )
    train(unpaired_dir, tmp_path / "b", _cyclegan_config(steps=2, val_every=2), progress=False)
    resumed = train(
        unpaired_dir, tmp_path / "b", _cyclegan_config(steps=4), resume=True, progress=False
    )
    a, b = load_checkpoint(straight.last), load_checkpoint(resumed.last)
    for name, tensor in a.ema.items():
        torch.testing.assert_close(b.ema[name], tensor, rtol=0, atol=0)
    torch.testing.assert_close(
        b.extra["kernel"]["weight"], a.extra["kernel"]["weight"], rtol=0, atol=0
    )
    torch.testing.assert_close(
        b.extra["history"]["sharp"], a.extra["history"]["sharp"], rtol=0, atol=0
    )


def test_cyclegan_generator_predicts_as_a_point_predictor(
    cyclegan_run: TrainResult, unpaired_dir: Path
) -> None:
    model = load_trained_model(cyclegan_run.best)
    hazy = read_single(sorted((unpaired_dir / "widefield").glob("*.tif"))[0])[0]
    sampler = build_sampler(model, SamplingConfig(samples=4, steps=5), torch.device("cpu"))
    assert sampler.steps == 1 and sampler.samples == 1
    result = predict_planes(model, sampler, hazy[None])
    assert np.count_nonzero(result.std) == 0
    # what predict runs is the generator G trained in the loop: y + v(0, [y, y])
    fixed = model.normalization.intensity_map()
    y = torch.from_numpy(fixed.normalize_input(hazy))[None, None]
    with torch.no_grad():
        g = generate(model.velocity.eval(), y)[0, 0].numpy()
    assert np.abs(g - y[0, 0].numpy()).mean() > 1e-4  # trained: not the identity any more
    np.testing.assert_allclose(result.mmse[0], fixed.denormalize_target(g), rtol=1e-5, atol=1e-3)


@pytest.mark.slow  # ~30 s; the U-Net export test covers the point-predictor package by default
def test_cyclegan_exports_and_passes(cyclegan_run: TrainResult, tmp_path: Path) -> None:
    maintainer = Maintainer(github_user="octocat", name="Octo Cat")  # GitHub's example account
    recipe = default_recipe().model_copy(update={"test_size": 32, "maintainers": [maintainer]})
    result = export_package(cyclegan_run.best, tmp_path / "cyclegan.zip", recipe)
    assert result.status == "passed"
    failed = [r.rule for r in check_package(result.path) if not r.passed]
    assert not failed
    with zipfile.ZipFile(result.path) as archive:
        card = archive.read("README.md").decode()
    assert "without paired images" in card and f"{KERNEL} x {KERNEL} blur kernel" in card
    assert "Unpaired: 5 widefield and 5 confocal training" in card


def test_non_blind_run_keeps_the_psf_shape(unpaired_dir: Path, tmp_path: Path) -> None:
    psf = unpaired_dir / "widefield_psf.tif"
    config = _cyclegan_config(
        steps=2, val_every=2, cyclegan=CycleGANConfig(kernel_size=KERNEL, scales=2, psf=str(psf))
    )
    result = train(unpaired_dir, tmp_path / "run", config, progress=False)
    kernel = tifffile.imread(result.best.parent / "kernel.tif")
    np.testing.assert_allclose(kernel, read_psf(psf, KERNEL), atol=1e-6)
    gain = load_checkpoint(result.best).extra["kernel"]["log_gain"]
    assert float(gain) != 0.0  # the gain is learned


def test_cyclegan_is_evaluated_on_pairs(
    cyclegan_run: TrainResult, sim_dir: Path, tmp_path: Path
) -> None:
    done = invoke(
        "evaluate",
        cyclegan_run.best,
        sim_dir,
        "--out",
        tmp_path / "report",
        "--name",
        "cyclegan",
        "--figures",
        "0",
        "--no-progress",
    )
    assert done.exit_code == 0, done.output
    record = json.loads((tmp_path / "report" / "methods" / "cyclegan.json").read_text())
    assert np.isfinite(record["overall"]["mmse"]["ri_psnr"])


# --- synthetic pairs ---------------------------------------------------------------------------


def test_synthetic_pairs_blur_confocal_with_the_kernel_and_add_fitted_noise(
    cyclegan_run: TrainResult, unpaired_dir: Path, tmp_path: Path
) -> None:
    """With the kernel set to 1.5 x delta, the synthetic widefield mean is an affine map of the
    confocal image written out by hand (z-score, scale, back to widefield units)."""
    checkpoint = load_checkpoint(cyclegan_run.best)
    delta = np.zeros((1, 1, KERNEL, KERNEL), np.float32)
    delta[0, 0, KERNEL // 2, KERNEL // 2] = 1.0
    checkpoint.extra["kernel"] = {
        "weight": torch.from_numpy(delta),
        "log_gain": torch.tensor(np.log(1.5), dtype=torch.float32),
    }
    model_path = tmp_path / "delta.pt"
    save_checkpoint(model_path, checkpoint)
    manifest = synthesize_pairs(model_path, unpaired_dir, tmp_path / "s", copies=2, progress=False)
    record = json.loads(manifest.read_text())
    assert len(record["pairs"]) == 6 and all(p["planes"] == 2 for p in record["pairs"])
    widefield, confocal = read_pair(tmp_path / "s" / "synthetic_00000.tif")
    source = read_single(Path(record["pairs"][0]["confocal"]))[0]
    np.testing.assert_array_equal(confocal[0], source)
    np.testing.assert_array_equal(confocal[1], source)  # both copies of one file in one file
    n = checkpoint.normalization
    expected = n.input_mean + 1.5 * (source - n.target_mean) * n.input_std / n.target_std
    model = NoiseModel.model_validate(record["noise_model"])
    variance = np.clip(model.gain * np.clip(expected, 0, None) + model.offset, 0, None)
    noise = (widefield[0] - expected) / np.sqrt(variance)  # should be standard normal
    assert abs(noise.mean()) < 0.1 and noise.std() == pytest.approx(1.0, abs=0.1)
    assert not np.array_equal(widefield[0], widefield[1])  # each copy has its own noise
    synthesize_pairs(model_path, unpaired_dir, tmp_path / "t", copies=2, progress=False)
    again, _ = read_pair(tmp_path / "t" / "synthetic_00000.tif")
    np.testing.assert_array_equal(again, widefield)  # same seed, same files


def test_synthesize_refuses_a_paired_model(
    trained: TrainResult, unpaired_dir: Path, tmp_path: Path
) -> None:
    done = invoke("synthesize", trained.best, unpaired_dir, "--out", tmp_path / "s")
    assert done.exit_code != 0
    assert "needs the blur kernel of a cyclegan run, not a 'hazematching' model" in done.output
    assert not (tmp_path / "s").exists()


# --- bad input ---------------------------------------------------------------------------------


def _folder(root: Path, widefield: list[np.ndarray], confocal: list[np.ndarray]) -> Path:
    for side, images in (("widefield", widefield), ("confocal", confocal)):
        (root / side).mkdir(parents=True)
        for i, image in enumerate(images):
            tifffile.imwrite(root / side / f"{i}.tif", image.astype(np.float32))
    return root


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("none", "no images in the widefield/ folder"),
        ("no_confocal", "no images in the confocal/ folder"),
        (
            "sizes",
            "image size 80x80 differs from 64x64 of 0.tif: both sides must have one image size",
        ),
        ("nan", "contains NaN or infinite values"),
    ],
)
def test_bad_unpaired_folders_give_one_line_errors(case: str, message: str, tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((64, 64))
    bad = image.copy()
    bad[3, 3] = np.nan
    widefield, confocal = {
        "none": ([], []),
        "no_confocal": ([image, image], []),
        "sizes": ([image, image], [image, np.ones((80, 80))]),
        "nan": ([image, image], [image, bad]),
    }[case]
    data = _folder(tmp_path / "data", widefield, confocal)
    out = tmp_path / "run"
    done = invoke(
        "train",
        data,
        "--out",
        out,
        "--method",
        "cyclegan",
        "--steps",
        "2",
        "--patch-size",
        "64",
        "--kernel-size",
        "7",
        "--no-progress",
    )
    assert done.exit_code != 0
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.output
    assert not out.exists() or not any(out.iterdir())


def test_paired_method_on_unpaired_folder_points_to_cyclegan(
    unpaired_dir: Path, tmp_path: Path
) -> None:
    done = invoke("train", unpaired_dir, "--out", tmp_path / "run", "--steps", "2", "--no-progress")
    assert done.exit_code != 0
    assert "method 'hazematching' needs pairs; train with --method cyclegan" in done.output
    assert not (tmp_path / "run").exists()


def test_missing_psf_file_is_refused_before_writing(unpaired_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "psf.tif"
    config = _cyclegan_config(
        cyclegan=CycleGANConfig(kernel_size=KERNEL, scales=2, psf=str(missing))
    )
    with pytest.raises(HazeMatchingError, match="file not found") as error:
        train(unpaired_dir, tmp_path / "run", config, progress=False)
    assert str(missing) in str(error.value)
    assert not (tmp_path / "run").exists()
