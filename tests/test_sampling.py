"""The scripted Euler sampler: exact Euler solutions, statistics, tiling, reproducibility.

Sampler, tiling and blending tests run analytic velocity fields (tests/helpers.py) whose Euler
solutions are known in closed form, so every expected number below is computed here, not by the
sampler. Tests of the network itself use a U-Net whose zero-initialised layers are redrawn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from hazematching.config import NetworkConfig
from hazematching.inference.sampling import (
    ChannelsLast,
    run_with_progress,
    script_sampler,
    tile_edges,
    tile_evaluations,
)
from hazematching.model.network import trace_velocity
from hazematching.model.sampler import EulerSampler, VelocityNet, gaussian_field
from tests.helpers import (
    ConstantField,
    GaussianPosteriorField,
    GuideField,
    LinearField,
    RecordingField,
    TileMeanField,
    TimeGuideField,
    reinitialised_velocity_net,
)

NETWORK = NetworkConfig(model_channels=32, channel_mult=(1, 2), attention_downsample=(2,))
CPU = torch.device("cpu")


def _sampler(velocity: nn.Module, **kwargs: object) -> EulerSampler:
    """An eager sampler with small defaults: 4 steps, 3 samples in batches of 2, multiple 8."""
    options: dict[str, object] = {
        "steps": 4,
        "samples": 3,
        "seed": 1,
        "batch_size": 2,
        "size_multiple": 8,
    }
    options.update(kwargs)
    return EulerSampler(velocity, **options)


def _run(sampler: nn.Module, hazy: Tensor) -> Tensor:
    """The sampler's output for these hazy images, without autograd."""
    with torch.no_grad():
        return sampler(hazy)


def _noise(seed: int, sample: int, height: int, width: int) -> Tensor:
    """The start noise of one sample, (1, 1, height, width) (the field is tested in test_noise)."""
    return gaussian_field(seed, sample, 0, 0, height, width, CPU)[None, None]


def _hazy(*shape: int, seed: int = 0) -> Tensor:
    """Standard normal test images from a private generator (the global one stays untouched)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- exact Euler solutions -----------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize(
    ("field", "solution"),
    [
        (ConstantField(0.75), lambda hazy, steps: hazy + 0.75),
        (LinearField(0.5), lambda hazy, steps: hazy * (1.0 + 0.5 / steps) ** steps),
        (TimeGuideField(), lambda hazy, steps: hazy + hazy * (steps - 1) / steps),
    ],
    ids=["constant", "linear", "time-guide"],
)
def test_euler_solution_of_analytic_fields(
    field: nn.Module, solution: Callable[[Tensor, int], Tensor], steps: int
) -> None:
    """From x_0 = hazy, T Euler steps at t = i/T of size 1/T reach the closed-form x_1."""
    hazy = _hazy(2, 1, 8, 16)
    sampler = _sampler(field, steps=steps, samples=1, start_input=1.0, start_noise=0.0)
    out = _run(sampler, hazy)
    expected = solution(hazy.double(), steps).float()
    torch.testing.assert_close(out[:, 0:1], expected)


def test_state_is_the_first_channel_and_hazy_the_second() -> None:
    hazy = _hazy(1, 1, 8, 8)
    # from x_0 = 0, v = channel 1 must integrate the hazy image (the state would stay 0)
    zero_start = _run(_sampler(GuideField(), samples=1, start_input=0.0, start_noise=0.0), hazy)
    torch.testing.assert_close(zero_start[:, 0:1], hazy)
    # from x_0 = hazy, v = channel 0 must grow the state: hazy (1 + 1/4)^4, not hazy + hazy
    grown = _run(_sampler(LinearField(1.0), samples=1, start_input=1.0, start_noise=0.0), hazy)
    torch.testing.assert_close(grown[:, 0:1], hazy * 1.25**4)


def test_velocity_is_evaluated_at_grid_times_on_sample_batches() -> None:
    """T calls per batch of samples at t = 0, 1/T, ..., rows ordered (sample, image)."""
    hazy = _hazy(2, 1, 8, 8)
    field = RecordingField(GuideField())
    _run(_sampler(field, steps=4, samples=3, batch_size=2), hazy)
    assert [call[0].tolist() for call in field.calls] == [
        [step / 4] * rows for rows in (4, 2) for step in range(4)
    ]
    first_x = field.calls[0][1]
    assert first_x.shape == (4, 2, 8, 8)
    noise = torch.cat([_noise(1, k, 8, 8).expand(2, 1, 8, 8) for k in (0, 1)])
    assert torch.equal(first_x[:, 0:1], noise)
    assert torch.equal(first_x[:, 1:2], hazy.repeat(2, 1, 1, 1))


# --- the MMSE head -------------------------------------------------------------------------


class _VelocityOnly(nn.Module):
    """A field with a head, seen without it: its velocity channel only."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """Channel 0 of the inner field."""
        return self.inner(t, x)[:, :1]


@pytest.mark.parametrize("tile", [0, 16])
def test_head_gives_the_gaussian_posterior_mean_and_samples_keep_their_spread(tile: int) -> None:
    """x_1 | hazy ~ N(hazy, s^2): the MMSE is hazy exactly, whatever the samples and steps; the
    samples follow the ODE solution hazy + s x_0 and the std is their spread."""
    spread, samples, steps = 0.5, 3, 400
    hazy = _hazy(2, 1, 24, 40)
    field = GaussianPosteriorField(spread)
    options = {"tile": tile, "overlap": 4 if tile else 0, "keep_samples": True}
    out = _run(_sampler(field, steps=steps, samples=samples, head=True, **options), hazy)
    torch.testing.assert_close(out[:, 0:1], hazy, rtol=0, atol=1e-6)
    kept = out[:, 2:].double()
    for k in range(samples):  # Euler's error is O(1/steps) of the exact hazy + s x_0
        exact = hazy + spread * _noise(1, k, 24, 40)
        torch.testing.assert_close(out[:, 2 + k : 3 + k], exact, rtol=0, atol=1e-2)
    torch.testing.assert_close(
        out[:, 1:2].double(), kept.std(dim=1, keepdim=True), atol=1e-6, rtol=1e-5
    )
    # without the head the MMSE is the mean of 3 samples: hazy + s * mean noise, far from hazy
    plain = _run(_sampler(_VelocityOnly(field), steps=steps, samples=samples, **options), hazy)
    torch.testing.assert_close(
        plain[:, 0:1].double(), kept.mean(dim=1, keepdim=True), atol=1e-6, rtol=1e-5
    )
    assert (plain[:, 0:1] - hazy).pow(2).mean().sqrt() > 0.15
    torch.testing.assert_close(plain[:, 1:3], out[:, 1:3])  # same std and samples


def test_one_step_of_the_ideal_velocity_is_the_posterior_mean() -> None:
    """x_0 + v(x_0, 0, hazy) = E[x_1 | hazy] for any x_0: a teacher's 'head alone' (1 x 1)."""
    hazy = _hazy(1, 1, 16, 16)
    one = _run(_sampler(_VelocityOnly(GaussianPosteriorField(0.7)), steps=1, samples=1), hazy)
    torch.testing.assert_close(one[:, 0:1], hazy, rtol=0, atol=1e-6)


def test_progress_driver_follows_the_head() -> None:
    scripted = script_sampler(
        _sampler(
            GaussianPosteriorField(0.5),
            samples=3,
            head=True,
            size_multiple=2,
            keep_samples=True,
            tile=16,
            overlap=4,
        )
    )
    hazy = _hazy(1, 1, 30, 22)
    with torch.no_grad():
        assert torch.equal(run_with_progress(scripted, hazy, _ignore), scripted(hazy))
        assert torch.equal(
            run_with_progress(scripted, hazy, _ignore, (3, 5)), scripted.sample_at(hazy, 3, 5)
        )


# --- scripting and the progress driver -----------------------------------------------------


def test_scripted_equals_eager_and_survives_save_load(tmp_path: Path) -> None:
    eager = _sampler(TimeGuideField(), keep_samples=True, tile=8, overlap=4)
    scripted = script_sampler(eager)
    hazy = _hazy(2, 1, 20, 28)
    expected = _run(eager, hazy)
    assert torch.equal(_run(scripted, hazy), expected)
    scripted.save(str(tmp_path / "sampler.pt"))
    assert torch.equal(_run(torch.jit.load(str(tmp_path / "sampler.pt")), hazy), expected)
    assert expected.shape == (2, 2 + 3, 20, 28)
    for k in range(3):  # x_1 = noise_k + hazy (T - 1)/T with T = 4
        torch.testing.assert_close(expected[:, 2 + k : 3 + k], _noise(1, k, 20, 28) + hazy * 0.75)


@pytest.mark.parametrize("tile", [0, 16])
def test_progress_driver_is_bitwise_identical(tile: int) -> None:
    scripted = script_sampler(
        _sampler(
            TileMeanField(),
            samples=5,
            size_multiple=2,
            keep_samples=True,
            tile=tile,
            overlap=4 if tile else 0,
        )
    )
    hazy = _hazy(1, 1, 30, 22)
    calls: list[int] = []
    with torch.no_grad():
        driven = run_with_progress(scripted, hazy, calls.append)
        assert torch.equal(driven, scripted(hazy))
        shifted = run_with_progress(scripted, hazy, _ignore, (7, 11))
        assert torch.equal(shifted, scripted.sample_at(hazy, 7, 11))
        assert not torch.equal(shifted, driven)  # other noise
    # 3 sample batches x 4 steps x tiles: 1 untiled; 30 x 22 with tiles of 16 + 4 = 20 px at most
    # 16 apart -> starts (0, 10) x (0, 2) = 4
    tiles = 1 if tile == 0 else 4
    if tile:
        assert tile_edges(scripted, 30) == [10, 20] and tile_edges(scripted, 22) == [2, 20]
    assert sum(calls) == tile_evaluations(scripted, 30, 22) == 3 * 4 * tiles


def _ignore(tiles: int) -> None:
    """A progress callback that counts nothing."""


# --- statistics, calibration, start state, seeds and batching ------------------------------


def _guide_samples(hazy: Tensor, samples: int, seed: int = 1) -> Tensor:
    """x_1 = noise_k + hazy of every sample k under v = hazy, (K, B, 1, H, W), in float64."""
    height, width = hazy.shape[-2], hazy.shape[-1]
    return torch.stack(
        [_noise(seed, k, height, width).double() + hazy.double() for k in range(samples)]
    )


def _kept_samples(hazy: Tensor, samples: int, seed: int = 1) -> Tensor:
    """`_guide_samples` of one image as the sampler's kept-sample channels, (1, K, H, W)."""
    return _guide_samples(hazy, samples, seed)[:, 0, 0][None].float()


def test_mean_and_std_summarise_the_samples() -> None:
    hazy = _hazy(2, 1, 16, 16)
    out = _run(_sampler(GuideField(), samples=5, keep_samples=True), hazy)
    expected = _guide_samples(hazy, 5)
    for k in range(5):
        torch.testing.assert_close(out[:, 2 + k : 3 + k], expected[k].float())
    torch.testing.assert_close(out[:, 0:1], expected.mean(dim=0).float())
    torch.testing.assert_close(out[:, 1:2], expected.std(dim=0, unbiased=True).float())


def test_calibration_scales_the_std() -> None:
    hazy = _hazy(1, 1, 16, 16)
    out = _run(_sampler(GuideField(), std_scale=2.0, std_offset=0.5), hazy)
    expected = _guide_samples(hazy, 3)
    torch.testing.assert_close(out[:, 0:1], expected.mean(dim=0).float())
    torch.testing.assert_close(out[:, 1:2], (expected.std(dim=0) * 2.0 + 0.5).float())


def test_single_sample_has_zero_std() -> None:
    hazy = _hazy(1, 1, 16, 16)
    out = _run(_sampler(GuideField(), samples=1), hazy)
    assert torch.count_nonzero(out[:, 1]) == 0
    torch.testing.assert_close(out[:, 0:1], _guide_samples(hazy, 1)[0].float())


def test_start_state_of_each_method() -> None:
    """x_0 is noise (HazeMatching), the guide (U-Net) or guide + scaled noise (InDI)."""
    guide = _hazy(2, 1, 8, 8)
    # samples 1 and 2 of both images, ordered (sample, image); noise depends on the sample only
    noise = torch.cat([_noise(1, k, 8, 8).expand(2, 1, 8, 8) for k in (1, 2)])
    field = ConstantField(0.0)
    assert torch.equal(_sampler(field).initial_state(guide, 1, 2, 0, 0), noise)
    unet = _sampler(field, start_input=1.0, start_noise=0.0).initial_state(guide, 1, 2, 0, 0)
    assert torch.equal(unet, guide.repeat(2, 1, 1, 1))
    indi = _sampler(field, start_input=1.0, start_noise=0.1).initial_state(guide, 1, 2, 0, 0)
    torch.testing.assert_close(indi, guide.repeat(2, 1, 1, 1) + 0.1 * noise)
    # a block whose top-left pixel is (3, 5) of a larger image starts from that image's noise
    larger = torch.cat([_noise(1, k, 11, 13).expand(2, 1, 11, 13) for k in (1, 2)])
    block = _sampler(field).initial_state(guide, 1, 2, 3, 5)
    assert torch.equal(block, larger[:, :, 3:, 5:])


def test_seed_determines_the_result() -> None:
    hazy = _hazy(1, 1, 16, 16)
    a = _run(_sampler(GuideField(), seed=3, keep_samples=True), hazy)
    b = _run(_sampler(GuideField(), seed=3, keep_samples=True), hazy)
    c = _run(_sampler(GuideField(), seed=4, keep_samples=True), hazy)
    assert torch.equal(a, b)
    torch.testing.assert_close(c[:, 2:], _kept_samples(hazy, 3, seed=4))
    assert not torch.allclose(a[:, 0], c[:, 0])


def test_result_does_not_depend_on_batching() -> None:
    images = _hazy(3, 1, 16, 16)
    together = _run(_sampler(GuideField(), samples=4, batch_size=4), images)
    alone = _run(_sampler(GuideField(), samples=4, batch_size=3), images[1:2])
    torch.testing.assert_close(alone[0], together[1])
    expected = _guide_samples(images[1:2], 4)
    torch.testing.assert_close(together[1:2, 0:1], expected.mean(dim=0).float())
    torch.testing.assert_close(together[1:2, 1:2], expected.std(dim=0).float())


@pytest.mark.parametrize("shape", [(5, 7), (17, 33), (2, 2), (16, 16)])
def test_any_size_is_padded_and_cropped_back(shape: tuple[int, int]) -> None:
    height, width = shape
    hazy = _hazy(1, 1, height, width)
    field = RecordingField(GuideField())
    out = _run(_sampler(field, samples=2, keep_samples=True), hazy)
    assert out.shape == (1, 4, height, width)
    padded = (-(-height // 8) * 8, -(-width // 8) * 8)
    assert all(x.shape[-2:] == padded for _, x in field.calls)
    assert all(
        torch.equal(x[:, 1:2, :height, :width], hazy.expand(2, 1, -1, -1)) for _, x in field.calls
    )
    torch.testing.assert_close(out[:, 2:4], _kept_samples(hazy, 2))


def test_global_generator_is_untouched() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _run(_sampler(GuideField()), _hazy(1, 1, 16, 16))
    assert torch.equal(torch.rand(3), expected)


# --- tiling --------------------------------------------------------------------------------


def test_image_within_one_tile_equals_untiled() -> None:
    """Tiles of 16 + 8 = 24 px cover 24 x 16 at once: the non-local field sees the whole image."""
    hazy = _hazy(1, 1, 24, 16)
    untiled = _run(_sampler(TileMeanField(), keep_samples=True), hazy)
    assert torch.equal(
        _run(_sampler(TileMeanField(), keep_samples=True, tile=16, overlap=8), hazy), untiled
    )
    for k in range(3):
        torch.testing.assert_close(untiled[:, 2 + k : 3 + k], _noise(1, k, 24, 16) + hazy.mean())


@pytest.mark.parametrize(("tile", "overlap"), [(8, 0), (8, 4), (16, 8), (16, 12)])
@pytest.mark.parametrize("field", [GuideField(), LinearField(0.5)], ids=["guide", "linear"])
def test_pointwise_field_is_unchanged_by_tiling(field: nn.Module, tile: int, overlap: int) -> None:
    """Normalised blending weights reproduce a pointwise field; a misplaced tile would not."""
    hazy = _hazy(2, 1, 48, 40)
    recorder = RecordingField(field)
    tiled = _run(_sampler(recorder, steps=3, keep_samples=True, tile=tile, overlap=overlap), hazy)
    untiled = _run(_sampler(field, steps=3, keep_samples=True), hazy)
    assert all(x.shape[-2] < 48 and x.shape[-1] < 40 for _, x in recorder.calls)
    torch.testing.assert_close(tiled, untiled, rtol=1e-6, atol=1e-6)


def _ramp(size: int, overlap: int) -> Tensor:
    """Blending weight of each pixel of a tile side: linear ramps of `overlap` px, then 1."""
    position = torch.arange(size, dtype=torch.float64) + 0.5
    return torch.clamp(torch.minimum(position, size - position) / overlap, max=1.0)


def test_overlapping_tiles_cross_fade_linearly() -> None:
    """Under v = tile mean of hazy, each pixel gets the ramp-weighted average of its tiles.

    Tiles of 16 + 8 = 24 px at most 16 apart, evenly spread: rows of 32 px start at 0 and 8,
    columns of 48 px at 0, 12 and 24, so neighbours share 16 or 12 px, more than the ramps.
    """
    hazy = _hazy(1, 1, 32, 48)
    out = _run(
        _sampler(
            TileMeanField(),
            steps=2,
            samples=1,
            start_input=1.0,
            start_noise=0.0,
            tile=16,
            overlap=8,
        ),
        hazy,
    )
    ramp = _ramp(24, 8)
    window = ramp[:, None] * ramp[None, :]
    total = torch.zeros(32, 48, dtype=torch.float64)
    norm = torch.zeros(32, 48, dtype=torch.float64)
    for row in (0, 8):
        for col in (0, 12, 24):
            mean = hazy[0, 0, row : row + 24, col : col + 24].double().mean()
            total[row : row + 24, col : col + 24] += window * mean
            norm[row : row + 24, col : col + 24] += window
    torch.testing.assert_close(out[0, 0], (hazy[0, 0].double() + total / norm).float())


@pytest.mark.parametrize("shape", [(5, 7), (25, 19), (16, 50)])
def test_tiled_odd_and_tiny_sizes(shape: tuple[int, int]) -> None:
    hazy = _hazy(1, 1, *shape)
    out = _run(_sampler(GuideField(), samples=2, keep_samples=True, tile=8, overlap=4), hazy)
    assert out.shape == (1, 4, *shape)
    torch.testing.assert_close(out[:, 2:4], _kept_samples(hazy, 2))


def test_invalid_tiling_is_refused() -> None:
    field = ConstantField(0.0)
    with pytest.raises(ValueError, match="multiple of 8"):
        EulerSampler(field, steps=1, samples=1, seed=0, batch_size=1, size_multiple=8, tile=60)
    with pytest.raises(ValueError, match="overlap"):
        EulerSampler(
            field, steps=1, samples=1, seed=0, batch_size=1, size_multiple=8, tile=64, overlap=64
        )


# --- the U-Net velocity network and its trace ----------------------------------------------


@pytest.fixture(scope="module")
def unet() -> VelocityNet:
    return reinitialised_velocity_net(NETWORK, 32, seed=0)


@pytest.fixture(scope="module")
def traced_unet(unet: VelocityNet) -> torch.jit.ScriptModule:
    return trace_velocity(unet, 32)


def _assert_depends_on_t(a: Tensor, b: Tensor) -> None:
    """Both outputs are far from zero and differ row by row (their times differ)."""
    assert a.abs().mean() > 0.1 and b.abs().mean() > 0.1
    assert ((a - b).abs().amax(dim=(1, 2, 3)) > 1e-3).all()


def test_trace_generalises_to_other_sizes_and_batches(unet, traced_unet) -> None:
    x = _hazy(3, 2, 48, 20)
    t, other_t = torch.tensor([0.0, 0.3, 0.9]), torch.tensor([0.5, 0.6, 0.2])
    with torch.no_grad():
        eager, other_eager = unet(t, x), unet(other_t, x)
        traced, other_traced = traced_unet(t, x), traced_unet(other_t, x)
    _assert_depends_on_t(traced, other_traced)
    torch.testing.assert_close(traced, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(other_traced, other_eager, rtol=1e-5, atol=1e-5)


def test_channels_last_trace_matches_the_default_layout(unet, traced_unet) -> None:
    """The CPU layout of the library path changes the speed, not the velocity, and leaves the
    model's own network (the one packages save) in the default layout."""
    fast = trace_velocity(ChannelsLast(unet), 32)
    x, t = _hazy(3, 2, 48, 20), torch.tensor([0.0, 0.3, 0.9])
    with torch.no_grad():
        out = fast(t, x)
        torch.testing.assert_close(out, traced_unet(t, x), rtol=1e-5, atol=1e-5)
    kernels = [p for p in unet.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert kernels and all(p.is_contiguous() for p in kernels)
    fast_kernels = [p for p in fast.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert fast_kernels and all(
        p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in fast_kernels
    )


def test_velocity_net_is_torchcfm_unet_and_traces_without_device_constants(
    unet, traced_unet
) -> None:
    x, t = _hazy(2, 2, 16, 24), torch.tensor([0.05, 0.6])
    with torch.no_grad():
        out = unet(t, x)
        _assert_depends_on_t(out, unet(t.flip(0), x))
        torch.testing.assert_close(out, unet.unet(t, x))  # torchcfm's own forward
    # a device frozen into the trace would break the package on another device
    assert "device(" not in traced_unet.code


@pytest.mark.parametrize("steps", [1, 2])
def test_steps_from_the_input_add_the_traced_velocity(traced_unet, steps: int) -> None:
    """From x_0 = hazy the scripted sampler follows x <- x + v(i/T, [x, hazy]) / T."""
    hazy = _hazy(1, 1, 16, 16)
    sampler = script_sampler(
        _sampler(
            traced_unet, steps=steps, samples=1, size_multiple=2, start_input=1.0, start_noise=0.0
        )
    )
    out = _run(sampler, hazy)
    x = hazy
    with torch.no_grad():
        for step in range(steps):
            velocity = traced_unet(torch.full([1], step / steps), torch.cat([x, hazy], dim=1))
            assert velocity.abs().mean() > 0.1
            x = x + velocity / steps
    torch.testing.assert_close(out[:, 0:1], x, rtol=1e-5, atol=1e-5)
