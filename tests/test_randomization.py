"""Domain randomisation: each simulation factor does what it should, the PSF models agree where
physics says they must, every pair's draw is recorded, and one seed gives one data set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from hazematching.cli import app
from hazematching.config import RandomizationConfig, SimulationConfig
from hazematching.data.phantom import random_volume
from hazematching.data.psf import PSF_MODELS, emission_psf
from hazematching.data.randomization import STRUCTURES, draw_condition
from hazematching.data.render import axial_offsets
from hazematching.data.simulate import simulate, simulate_pair

SIZE = 64
OFFSETS = axial_offsets(9, 0.3)  # -2.4 .. 2.4 um
FOCUS = len(OFFSETS) // 2
DEFOCUSED = FOCUS - 3  # 0.9 um: the cone (radius ~1.3 um at NA 1.1) stays inside the field


def _radius_um(plane: np.ndarray, pixel_um: float, axis: int | None = None) -> float:
    """Width of a PSF plane in micrometres, from its effective area (sum p)^2 / sum p^2.

    Without `axis`: the radius of a disc of that area; with one: the effective length of the
    marginal along that axis. Unlike an RMS radius (which diverges on the Airy pattern's 1/r^3
    tails) or a half-energy radius (which jumps from pixel ring to ring), it is dominated by the
    core and varies smoothly.
    """
    if axis is None:
        area = plane.sum() ** 2 / (plane**2).sum() * pixel_um**2
        return float(np.sqrt(area / np.pi))
    marginal = plane.sum(axis=1 - axis)
    return float(marginal.sum() ** 2 / (marginal**2).sum() * pixel_um)


def _psf(model: str, **changes: float) -> np.ndarray:
    """PSF planes on a 128 px grid of 0.05 um (6.4 um): fine enough to resolve the focus."""
    optics = {"pixel_um": 0.05, "na": 1.1, "n": 1.33, "wavelength": 520.0, **changes}
    aberrations = {
        k: optics.pop(k) for k in ("spherical_waves", "astigmatism_waves") if k in optics
    }
    return emission_psf(
        model,  # type: ignore[arg-type]
        128,
        optics["pixel_um"],
        OFFSETS,
        optics["na"],
        optics["n"],
        optics["wavelength"],
        **aberrations,
    )


@pytest.mark.parametrize("model", PSF_MODELS)
def test_psf_models_narrow_with_na_widen_with_wavelength_keep_defocused_energy(
    model: str,
) -> None:
    base = _psf(model)
    assert base[FOCUS].sum() == pytest.approx(1.0)
    width = _radius_um(base[FOCUS], 0.05)
    assert width < 0.9 * _radius_um(_psf(model, na=0.8)[FOCUS], 0.05)  # higher NA, narrower
    assert _radius_um(_psf(model, wavelength=650.0)[FOCUS], 0.05) > 1.1 * width
    # haze: the defocused planes spread wider than the focus but keep most of its energy
    assert _radius_um(base[DEFOCUSED], 0.05) > 3 * width
    assert base[DEFOCUSED].sum() > 0.8
    # a higher immersion index at the same NA narrows the cone: less defocus spread
    narrower = _psf(model, n=1.52)[DEFOCUSED]
    assert _radius_um(narrower, 0.05) < 0.9 * _radius_um(base[DEFOCUSED], 0.05)


def test_vectorial_agrees_with_scalar_at_low_na_in_focus_and_parts_with_it_as_na_grows() -> None:
    """The scalar model neglects polarisation: the vectorial focus differs from it by terms that
    vanish as the rays approach the axis. So the two must agree at low NA (NA 0.5 in water:
    rays within 22 degrees of the axis) and part as the NA grows. The tolerance, 6 % relative
    l2 at NA 0.5 in focus and 0.6 um out of it, is set by the scalar model's pupil, sampled on
    the image's frequency grid (a radius of 3.7 frequency pixels here at NA 0.5; below that NA
    the sampling, not the physics, dominates the difference); it is far below the gap at NA 1.1."""

    def distance(na: float, n: float, plane: int = FOCUS) -> float:
        scalar, vectorial = _psf("scalar", na=na, n=n), _psf("vectorial", na=na, n=n)
        return float(
            np.linalg.norm(vectorial[plane] - scalar[plane]) / np.linalg.norm(scalar[plane])
        )

    sweep = [distance(na, 1.33) for na in (0.5, 0.8, 1.1)]
    assert sweep == sorted(sweep) and sweep[0] < sweep[-1] / 3
    assert sweep[0] < 0.06 and distance(0.5, 1.33, FOCUS + 2) < 0.06
    # at NA 1.3 in oil the vectorial focus is measurably wider, the reason to have that model
    high = {"na": 1.3, "n": 1.52}
    scalar, vectorial = _psf("scalar", **high), _psf("vectorial", **high)
    assert _radius_um(vectorial[FOCUS], 0.05) > _radius_um(scalar[FOCUS], 0.05)


def test_aberrations_lower_the_peak_and_astigmatism_breaks_the_symmetry() -> None:
    base = _psf("scalar")
    spherical = _psf("scalar", spherical_waves=0.15)
    assert spherical[FOCUS].max() < 0.75 * base[FOCUS].max()  # Strehl ~ exp(-(2 pi 0.15)^2)
    astigmatic = _psf("scalar", astigmatism_waves=0.15)
    y, x = (_radius_um(astigmatic[FOCUS + 2], 0.05, axis) for axis in (0, 1))
    assert abs(y - x) > 0.15 * (y + x) / 2
    y, x = (_radius_um(base[FOCUS + 2], 0.05, axis) for axis in (0, 1))
    assert abs(y - x) < 0.01 * (y + x) / 2


def test_pixel_size_sets_the_psf_width_in_pixels() -> None:
    fine, coarse = _psf("scalar", pixel_um=0.04), _psf("scalar", pixel_um=0.08)
    # the same optics: the same width in micrometres, half the width in pixels
    assert _radius_um(fine[FOCUS], 0.04) == pytest.approx(_radius_um(coarse[FOCUS], 0.08), rel=0.1)
    assert _radius_um(coarse[FOCUS], 1.0) < 0.6 * _radius_um(fine[FOCUS], 1.0)


def _haze(pair_config: SimulationConfig, pairs: int = 3) -> float:
    """Mean background-to-peak ratio (median / 99.9th percentile) of the noise-free widefield."""
    ratios = []
    for index in range(pairs):
        clean = simulate_pair(pair_config, index).widefield_clean
        ratios.append(np.median(clean) / np.percentile(clean, 99.9))
    return float(np.mean(ratios))


def test_out_of_focus_brightness_adds_haze() -> None:
    base = SimulationConfig(size=SIZE)
    assert _haze(base.model_copy(update={"defocus_brightness": 3.0})) > 1.2 * _haze(base)


def test_simulate_images_through_the_configured_optics() -> None:
    """The wiring from configuration to PSFs: the excitation wavelength shapes the confocal
    image only, the PSF model and the aberrations both images."""
    empty = dict.fromkeys(STRUCTURES, 0.0)
    base = SimulationConfig(size=SIZE, **{**empty, "puncta": 40.0})
    pair = simulate_pair(base, 0)
    bluer = simulate_pair(base.model_copy(update={"excitation_nm": 405.0}), 0)
    assert np.array_equal(bluer.widefield_clean, pair.widefield_clean)
    # a shorter excitation wavelength: a tighter excitation spot, sharper confocal puncta
    assert bluer.confocal_clean.max() / bluer.confocal_clean.sum() > 1.05 * (
        pair.confocal_clean.max() / pair.confocal_clean.sum()
    )
    for change in ({"psf_model": "gaussian"}, {"spherical_aberration": 0.15}):
        other = simulate_pair(SimulationConfig.model_validate({**base.model_dump(), **change}), 0)
        assert not np.allclose(other.widefield_clean, pair.widefield_clean, rtol=1e-3)
        assert not np.allclose(other.confocal_clean, pair.confocal_clean, rtol=1e-3)


def _noise_std(config: SimulationConfig) -> float:
    """Std of widefield noise relative to the photon scale, on three pairs."""
    values = []
    for index in range(3):
        pair = simulate_pair(config, index)
        scale = config.widefield_photons / np.percentile(pair.widefield_clean, 99.9)
        residual = (
            pair.widefield
            - scale * pair.widefield_clean
            - config.background * (config.widefield_photons)
        )
        values.append(residual.std() / config.widefield_photons)
    return float(np.mean(values))


def test_fewer_photons_more_noise_read_noise_and_background_add_to_it() -> None:
    base = SimulationConfig(size=SIZE, widefield_photons=200.0)
    assert _noise_std(base.model_copy(update={"widefield_photons": 20.0})) > 2.5 * _noise_std(base)
    # read noise alone: in photons, its std is the read noise
    dark = base.model_copy(update={"widefield_photons": 1e-6, "read_noise": 5.0})
    assert simulate_pair(dark, 0).widefield.std() == pytest.approx(5.0, rel=0.05)
    background = base.model_copy(update={"background": 0.2})
    noisy, clean = simulate_pair(background, 0), simulate_pair(base, 0)
    # the offset is background x photons, and its shot noise raises the noise
    assert np.mean(noisy.widefield - clean.widefield) == pytest.approx(40.0, rel=0.05)
    assert _noise_std(background) > 1.1 * _noise_std(base)
    # the pinhole rejects it: no offset in the confocal image
    assert abs(np.mean(noisy.confocal - clean.confocal)) < 1.0
    assert np.array_equal(noisy.confocal_clean, clean.confocal_clean)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_each_structure_alone_fills_a_volume_and_none_leaves_it_empty(structure: str) -> None:
    empty = dict.fromkeys(STRUCTURES, 0.0)
    density = {"tissue": 0.5, "puncta": 40.0, "vesicles": 20.0}.get(structure, 5.0)
    config = SimulationConfig(size=SIZE, **{**empty, structure: density})
    volume = random_volume(np.random.default_rng(0), config, SIZE)
    assert volume.max() > 0
    nothing = SimulationConfig(size=SIZE, **empty)
    assert random_volume(np.random.default_rng(0), nothing, SIZE).max() == 0


def test_puncta_are_small_and_tissue_fills_the_field() -> None:
    empty = dict.fromkeys(STRUCTURES, 0.0)
    puncta = random_volume(
        np.random.default_rng(0), SimulationConfig(size=SIZE, **{**empty, "puncta": 40.0}), SIZE
    )
    tissue = random_volume(
        np.random.default_rng(0), SimulationConfig(size=SIZE, **{**empty, "tissue": 0.5}), SIZE
    )
    assert (puncta > 0.1 * puncta.max()).mean() < 0.01
    assert (tissue > 0.05 * tissue.max()).mean() > 0.1


def test_draws_stay_in_range_are_recorded_and_pinned_ranges_pin(tmp_path: Path) -> None:
    ranges = RandomizationConfig(
        numerical_aperture=(0.9, 1.4), widefield_photons=(30.0, 3000.0), read_noise=(2.0, 2.0)
    )
    config = SimulationConfig(pairs=40, size=32, seed=3, randomize=ranges)
    drawn = [draw_condition(config, i) for i in range(40)]
    for pair in drawn:
        assert pair.randomize is None
        assert 0.9 <= pair.numerical_aperture <= min(1.4, 0.95 * pair.immersion_index)
        assert 30.0 <= pair.widefield_photons <= 3000.0 and pair.read_noise == 2.0
        assert 20.0 <= pair.emission_nm - pair.excitation_nm <= 60.0
        assert any(getattr(pair, name) > 0 for name in STRUCTURES)
        assert pair.widefield_gain == pytest.approx(200.0 / pair.widefield_photons)
        assert pair.confocal_gain == pytest.approx(2000.0 / pair.confocal_photons)
    photons = np.log10([pair.widefield_photons for pair in drawn])
    assert photons.max() - photons.min() > 1.0  # more than a decade, log-uniformly
    assert len({pair.psf_model for pair in drawn}) == 3
    manifest = json.loads(simulate(tmp_path / "sim", config, progress=False).read_text())
    record = manifest["pairs"][5]["condition"]
    assert record["numerical_aperture"] == drawn[5].numerical_aperture
    assert record["psf_model"] == drawn[5].psf_model
    assert not (tmp_path / "sim" / "widefield_psf.tif").exists()  # no single PSF to give


def test_standardised_intensity_keeps_the_scale_and_varies_the_noise() -> None:
    """With the default gains every image has the base configuration's scale (200 at the 99.9th
    percentile of the widefield signal); only the noise follows the drawn photon level."""
    pinned = {"background": (0.0, 0.0), "read_noise": (0.0, 0.0)}
    means, noise = {}, {}
    for photons in (30.0, 1000.0):
        ranges = RandomizationConfig(widefield_photons=(photons, photons), **pinned)
        pair = simulate_pair(SimulationConfig(size=SIZE, seed=2, randomize=ranges), 0)
        signal = pair.widefield_clean * 200.0 / np.percentile(pair.widefield_clean, 99.9)
        means[photons] = float(pair.widefield.mean() / signal.mean())
        noise[photons] = float(np.std(pair.widefield - signal) / 200.0)
    # the noisy images have the scale of the signal at 200 (Poisson noise has zero mean)
    assert means[30.0] == pytest.approx(1.0, abs=0.03)
    assert means[1000.0] == pytest.approx(1.0, abs=0.01)
    # Poisson: relative noise grows like 1 / sqrt(photons), here sqrt(1000 / 30) = 5.8
    assert noise[30.0] / noise[1000.0] == pytest.approx(np.sqrt(1000 / 30), rel=0.15)
    raw = RandomizationConfig(standardize_intensity=False, widefield_photons=(30.0, 30.0))
    dim = simulate_pair(SimulationConfig(size=SIZE, seed=2, randomize=raw), 0)
    assert np.percentile(dim.widefield, 99.9) < 60.0  # photon counts, not the standard scale


def test_structure_probability_sets_how_many_structures_a_pair_mixes() -> None:
    counts = {}
    for probability in (0.2, 1.0):
        ranges = RandomizationConfig(structure_probability=probability)
        config = SimulationConfig(seed=5, randomize=ranges)
        counts[probability] = [
            sum(getattr(draw_condition(config, i), name) > 0 for name in STRUCTURES)
            for i in range(40)
        ]
    assert set(counts[1.0]) == {len(RandomizationConfig().structures)}  # all five, every pair
    assert min(counts[0.2]) == 1 and np.mean(counts[0.2]) < 2.0  # at least one, rarely more


def test_randomising_refuses_fixed_values_it_would_override(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", str(tmp_path / "out"), "--randomize", "--thickness", "4"]
    )
    assert result.exit_code != 0 and "--thickness" in result.output and "--ranges" in result.output
    assert not (tmp_path / "out").exists()


def test_same_seed_same_randomised_data_other_seed_other_data(tmp_path: Path) -> None:
    config = SimulationConfig(pairs=4, size=32, seed=9, randomize=RandomizationConfig())
    for name in ("a", "b"):
        simulate(tmp_path / name, config, progress=False)
    simulate(tmp_path / "c", config.model_copy(update={"seed": 10}), progress=False)
    files = sorted((tmp_path / "a").glob("*/*.tif"))
    assert len(files) == 4
    for path in files:
        relative = path.relative_to(tmp_path / "a")
        assert np.array_equal(tifffile.imread(path), tifffile.imread(tmp_path / "b" / relative))
    first = [tifffile.imread(p) for p in files]
    other = [tifffile.imread(p) for p in sorted((tmp_path / "c").glob("*/*.tif"))]
    assert not any(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_a_fixed_configuration_draws_nothing() -> None:
    """A pair without ranges keeps its configuration and its stream (seed, index)."""
    config = SimulationConfig(size=32, seed=4)
    assert draw_condition(config, 1) is config
    assert simulate_pair(config, 1).seed == [4, 1]
    randomised = SimulationConfig(size=32, seed=4, randomize=RandomizationConfig())
    assert not np.array_equal(
        simulate_pair(config, 1).widefield, simulate_pair(randomised, 1).widefield
    )


def test_bad_ranges_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    ranges = tmp_path / "ranges.toml"
    ranges.write_text("numerical_aperture = [1.3, 0.9]\n")
    result = CliRunner().invoke(
        app, ["simulate", str(tmp_path / "out"), "--pairs", "2", "--ranges", str(ranges)]
    )
    assert result.exit_code != 0
    line = result.output.strip()
    assert "\n" not in line and str(ranges) in line and "numerical_aperture" in line
    assert not (tmp_path / "out").exists()
    ranges.write_text("photons = [1, 2]\n")
    result = CliRunner().invoke(
        app, ["simulate", str(tmp_path / "out"), "--pairs", "2", "--ranges", str(ranges)]
    )
    assert result.exit_code != 0 and "photons" in result.output
    missing = CliRunner().invoke(
        app, ["simulate", str(tmp_path / "out"), "--ranges", str(tmp_path / "none.toml")]
    )
    assert missing.exit_code != 0 and "none.toml" in missing.output


def test_ranges_file_randomises_through_the_cli(tmp_path: Path) -> None:
    ranges = tmp_path / "ranges.toml"
    ranges.write_text('psf_models = ["gaussian"]\nnumerical_aperture = [0.6, 0.6]\n')
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(tmp_path / "out"),
            "--pairs",
            "3",
            "--size",
            "32",
            "--ranges",
            str(ranges),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "simulation.json").read_text())
    conditions = [record["condition"] for record in manifest["pairs"]]
    assert {c["psf_model"] for c in conditions} == {"gaussian"}
    assert {c["numerical_aperture"] for c in conditions} == {0.6}
    assert manifest["config"]["randomize"]["numerical_aperture"] == [0.6, 0.6]


def test_a_pupil_beyond_the_pixel_grid_is_not_clipped() -> None:
    """NA 1.35 at 390 nm needs 3.5 cycles/um; 0.16 um pixels resolve 3.1. The coarse PSF must
    match the PSF computed on 7x finer pixels (unclipped) and integrated over each 0.16 um
    pixel: within 5 % at the peak and in width (the coarse one integrates 3 x 3 sub-pixels; a
    clipped, point-sampled pupil is 48 % too high at the peak)."""
    coarse = emission_psf("scalar", 32, 0.16, np.array([0.0]), 1.35, 1.52, 390.0)[0]
    fine = emission_psf("scalar", 224, 0.16 / 7, np.array([0.0]), 1.35, 1.52, 390.0)[0]
    binned = np.roll(fine, 3, axis=(0, 1)).reshape(32, 7, 32, 7).sum(axis=(1, 3))
    binned /= binned.sum()
    assert coarse[0, 0] == pytest.approx(binned[0, 0], rel=0.05)
    assert _radius_um(coarse, 0.16) == pytest.approx(_radius_um(binned, 0.16), rel=0.05)
    assert coarse[0, 1] == pytest.approx(coarse[1, 0]) == pytest.approx(coarse[0, -1])
