"""The scripted Euler sampler: same code scripted or eager, exact statistics, reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hazematching.config import NetworkConfig
from hazematching.inference.sampler import EulerSampler
from hazematching.inference.sampling import (
    run_with_progress,
    script_sampler,
    tile_edges,
    tile_evaluations,
)
from hazematching.training.network import build_velocity_net, trace_velocity

NETWORK = NetworkConfig(model_channels=32, channel_mult=(1, 2), attention_downsample=(2,))


@pytest.fixture(scope="module")
def traced() -> torch.jit.ScriptModule:
    torch.manual_seed(0)
    return trace_velocity(build_velocity_net(NETWORK, 32), 32)


def _sampler(traced: torch.jit.ScriptModule, **kwargs: object) -> EulerSampler:
    options: dict[str, object] = {
        "steps": 4,
        "samples": 3,
        "seed": 1,
        "batch_size": 2,
        "size_multiple": NETWORK.size_multiple,
    }
    options.update(kwargs)
    return EulerSampler(traced, **options)


def test_trace_generalises_to_other_sizes_and_batches() -> None:
    torch.manual_seed(1)
    net = build_velocity_net(NETWORK, 32).eval()
    traced = trace_velocity(net, 32)
    x, t = torch.randn(3, 2, 48, 20), torch.tensor([0.0, 0.3, 0.9])
    with torch.no_grad():
        torch.testing.assert_close(traced(t, x), net(t, x), rtol=1e-5, atol=1e-5)


def test_velocity_net_is_torchcfm_unet_and_traces_without_device_constants() -> None:
    torch.manual_seed(2)
    net = build_velocity_net(NetworkConfig(), 64).eval()
    x, t = torch.randn(2, 2, 64, 48), torch.tensor([0.05, 0.6])
    with torch.no_grad():
        assert torch.equal(net(t, x), net.unet(t, x))  # torchcfm's own forward
    # a device frozen into the trace would break the package on another device
    assert "device(" not in trace_velocity(net, 64).code


def test_scripted_equals_eager_and_survives_save_load(traced, tmp_path: Path) -> None:
    eager = _sampler(traced, keep_samples=True)
    scripted = script_sampler(eager)
    hazy = torch.randn(2, 1, 24, 36)
    with torch.no_grad():
        expected = eager(hazy)
        assert torch.equal(scripted(hazy), expected)
        scripted.save(str(tmp_path / "sampler.pt"))
        loaded = torch.jit.load(str(tmp_path / "sampler.pt"))
        assert torch.equal(loaded(hazy), expected)
    assert expected.shape == (2, 2 + 3, 24, 36)


@pytest.mark.parametrize("tile", [0, 16])
def test_progress_driver_is_bitwise_identical(traced, tile: int) -> None:
    scripted = script_sampler(
        _sampler(traced, samples=5, keep_samples=True, tile=tile, overlap=4 if tile else 0)
    )
    hazy = torch.randn(1, 1, 30, 22)
    calls: list[int] = []
    with torch.no_grad():
        driven = run_with_progress(scripted, hazy, calls.append)
        assert torch.equal(driven, scripted(hazy))
    # 3 sample batches x 4 steps x tiles: 1 untiled; 30 x 22 with tiles of 16 + 4 = 20 px at most
    # 16 apart -> starts (0, 10) x (0, 2) = 4
    tiles = 1 if tile == 0 else 4
    if tile:
        assert tile_edges(scripted, 30) == [10, 20] and tile_edges(scripted, 22) == [2, 20]
    assert sum(calls) == tile_evaluations(scripted, 30, 22) == 3 * 4 * tiles


def test_mean_and_std_summarise_the_samples(traced) -> None:
    sampler = _sampler(traced, samples=5, keep_samples=True)
    with torch.no_grad():
        out = sampler(torch.randn(2, 1, 16, 16))
    samples = out[:, 2:]
    torch.testing.assert_close(out[:, 0], samples.mean(dim=1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[:, 1], samples.std(dim=1, unbiased=True), rtol=1e-4, atol=1e-5)
    assert not torch.equal(samples[:, 0], samples[:, 1])  # samples differ from each other


def test_calibration_scales_the_std(traced) -> None:
    hazy = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        plain = _sampler(traced)(hazy)
        calibrated = _sampler(traced, std_scale=2.0, std_offset=0.5)(hazy)
    assert torch.equal(calibrated[:, 0], plain[:, 0])
    torch.testing.assert_close(calibrated[:, 1], plain[:, 1] * 2.0 + 0.5)


def test_single_sample_has_zero_std(traced) -> None:
    with torch.no_grad():
        out = _sampler(traced, samples=1)(torch.randn(1, 1, 16, 16))
    assert torch.count_nonzero(out[:, 1]) == 0


def test_start_state_of_each_method(traced) -> None:
    """x_0 is noise (HazeMatching), the guide (U-Net) or guide + scaled noise (InDI)."""
    guide = torch.randn(2, 1, 8, 8)
    noise = _sampler(traced).initial_state(guide, 1, 2)
    assert noise.shape == (4, 1, 8, 8)
    assert torch.equal(noise[0], noise[1])  # same sample index: same noise for every image
    torch.testing.assert_close(
        _sampler(traced, start_input=1.0, start_noise=0.0).initial_state(guide, 1, 2),
        guide.repeat(2, 1, 1, 1),
    )
    indi = _sampler(traced, start_input=1.0, start_noise=0.1).initial_state(guide, 1, 2)
    torch.testing.assert_close(indi, guide.repeat(2, 1, 1, 1) + 0.1 * noise)


def test_one_step_from_the_input_is_input_plus_velocity(traced) -> None:
    hazy = torch.randn(1, 1, 16, 16)
    sampler = script_sampler(_sampler(traced, steps=1, samples=1, start_input=1.0, start_noise=0.0))
    with torch.no_grad():
        out = sampler(hazy)
        expected = hazy + traced(torch.zeros(1), torch.cat([hazy, hazy], dim=1))
    torch.testing.assert_close(out[:, 0:1], expected, rtol=1e-5, atol=1e-5)


def test_seed_determines_the_result(traced) -> None:
    hazy = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        a = _sampler(traced, seed=3)(hazy)
        b = _sampler(traced, seed=3)(hazy)
        c = _sampler(traced, seed=4)(hazy)
    assert torch.equal(a, b)
    assert not torch.allclose(a[:, 0], c[:, 0])


def test_result_does_not_depend_on_batching(traced) -> None:
    images = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        together = _sampler(traced, samples=4, batch_size=4)(images)
        alone = _sampler(traced, samples=4, batch_size=3)(images[1:2])
    torch.testing.assert_close(alone[0], together[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 7), (17, 33), (2, 2), (16, 16)])
def test_any_size_is_padded_and_cropped_back(traced, shape: tuple[int, int]) -> None:
    with torch.no_grad():
        out = _sampler(traced, samples=2)(torch.randn(1, 1, *shape))
    assert out.shape == (1, 2, *shape)
    assert torch.isfinite(out).all()


def test_global_generator_is_untouched(traced) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with torch.no_grad():
        _sampler(traced)(torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(torch.rand(3), expected)


@pytest.fixture(scope="module")
def deep_traced() -> torch.jit.ScriptModule:
    """A 4-level net whose output layer is not zero (torchcfm initialises it to zero)."""
    torch.manual_seed(3)
    net = build_velocity_net(NetworkConfig(channel_mult=(1, 2, 2, 2), attention_downsample=()), 64)
    with torch.no_grad():
        for parameter in net.unet.out.parameters():
            parameter.normal_(0.0, 0.05)
    return trace_velocity(net, 64)


def _tiled(traced, hazy: torch.Tensor, **kwargs: object) -> torch.Tensor:
    options: dict[str, object] = {
        "steps": 4,
        "samples": 2,
        "seed": 1,
        "batch_size": 2,
        "size_multiple": 8,
        "keep_samples": True,
    }
    options.update(kwargs)
    with torch.no_grad():
        return script_sampler(EulerSampler(traced, **options))(hazy)


def test_image_within_one_tile_equals_untiled(deep_traced) -> None:
    hazy = torch.randn(1, 1, 64, 56)
    assert torch.equal(_tiled(deep_traced, hazy, tile=64, overlap=16), _tiled(deep_traced, hazy))


def test_overlaps_agree_and_tiling_stays_close_to_whole_image(deep_traced) -> None:
    hazy = torch.randn(1, 1, 192, 160)
    whole = _tiled(deep_traced, hazy)
    narrow = _tiled(deep_traced, hazy, tile=64, overlap=16)
    wide = _tiled(deep_traced, hazy, tile=64, overlap=32)
    scale = whole.abs().mean()
    # tiles differ from the whole image only by the network's view near tile borders, which the
    # blending averages; a difference of 1% of the mean magnitude would be a visible artefact
    assert (narrow - wide).abs().mean() < 0.01 * scale
    assert (narrow - whole).abs().mean() < 0.01 * scale
    assert not torch.equal(narrow, wide)  # tiling really happened


@pytest.mark.parametrize("shape", [(5, 7), (100, 77), (64, 200)])
def test_tiled_odd_and_tiny_sizes(deep_traced, shape: tuple[int, int]) -> None:
    out = _tiled(deep_traced, torch.randn(1, 1, *shape), tile=64, overlap=16)
    assert out.shape == (1, 4, *shape) and torch.isfinite(out).all()


def test_invalid_tiling_is_refused(deep_traced) -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        EulerSampler(
            deep_traced, steps=1, samples=1, seed=0, batch_size=1, size_multiple=8, tile=60
        )
    with pytest.raises(ValueError, match="overlap"):
        EulerSampler(
            deep_traced,
            steps=1,
            samples=1,
            seed=0,
            batch_size=1,
            size_multiple=8,
            tile=64,
            overlap=64,
        )
