"""The simulator: physically meaningful PSFs, exact Fourier rendering, real haze, files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from hazematching.config import SimulationConfig
from hazematching.data.psf import confocal_psf, emission_psf
from hazematching.data.render import axial_offsets, render_focal_plane
from hazematching.data.simulate import assign_splits, simulate, simulate_pair
from hazematching.errors import HazeMatchingError

OPTICS = {"pixel_um": 0.1, "numerical_aperture": 1.1, "immersion_index": 1.33}


def test_fourier_rendering_matches_direct_convolution() -> None:
    rng = np.random.default_rng(0)
    planes, size = 3, 10
    volume = rng.random((planes, size, size))
    psf = rng.random((2 * planes - 1, size, size))
    focal = 1
    direct = np.zeros((size, size))
    for z in range(planes):
        kernel = psf[z - focal + planes - 1]
        for y in range(size):
            for x in range(size):
                for v in range(size):
                    for u in range(size):
                        direct[y, x] += volume[z, v, u] * kernel[(y - v) % size, (x - u) % size]
    rendered = render_focal_plane(volume, psf, focal)
    np.testing.assert_allclose(rendered, direct, rtol=1e-10, atol=1e-10)


def test_widefield_keeps_defocused_energy_confocal_removes_it() -> None:
    offsets = axial_offsets(11, 0.3)  # -3 um .. 3 um
    optics = (64, OPTICS["pixel_um"], offsets, OPTICS["numerical_aperture"])
    wf = emission_psf("scalar", *optics, OPTICS["immersion_index"], 520.0)
    excitation = emission_psf("scalar", *optics, OPTICS["immersion_index"], 488.0)
    cf = confocal_psf(wf, excitation, *optics[1:], 520.0, 1.0)
    wf_energy = wf.sum(axis=(1, 2))
    cf_energy = cf.sum(axis=(1, 2))
    np.testing.assert_allclose(wf_energy, 1.0, rtol=1e-9)  # Parseval: every plane carries it all
    focus = len(offsets) // 2
    assert cf_energy[focus] == pytest.approx(1.0)
    assert cf_energy[0] < 0.2 * cf_energy[focus]  # optical sectioning at 3 um defocus
    # the widefield PSF spreads out of focus: its peak drops far below the in-focus peak
    assert wf[0].max() < 0.05 * wf[focus].max()


def test_widefield_is_hazier_than_confocal() -> None:
    config = SimulationConfig(size=96)
    ratios = []
    for index in range(4):
        pair = simulate_pair(config, index)
        ratio = [
            float(np.median(im) / np.percentile(im, 99.9)) for im in (pair.widefield, pair.confocal)
        ]
        ratios.append(ratio)
    wf, cf = np.mean(ratios, axis=0)
    assert wf >= 3 * cf, f"background-to-peak widefield {wf:.4f} vs confocal {cf:.4f}"


def test_thicker_samples_are_hazier() -> None:
    ratio = {}
    for thickness in (1.5, 8.0):
        pair = simulate_pair(SimulationConfig(size=64, thickness_um=thickness), 0)
        ratio[thickness] = np.median(pair.widefield_clean) / pair.widefield_clean.max()
    assert ratio[8.0] > ratio[1.5]


def test_pairs_depend_only_on_seed_and_index() -> None:
    a = simulate_pair(SimulationConfig(size=32, pairs=2, seed=4), 1)
    b = simulate_pair(SimulationConfig(size=32, pairs=50, seed=4), 1)
    c = simulate_pair(SimulationConfig(size=32, pairs=2, seed=5), 1)
    assert np.array_equal(a.widefield, b.widefield) and np.array_equal(a.confocal, b.confocal)
    assert not np.array_equal(a.widefield, c.widefield)


def test_splits_cover_every_pair_once() -> None:
    splits = assign_splits(SimulationConfig(pairs=20))
    assert len(splits) == 20
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (16, 2, 2)
    small = assign_splits(SimulationConfig(pairs=3))
    assert sorted(small) == ["test", "train", "val"]


def test_simulate_writes_pairs_and_manifest(sim_dir: Path) -> None:
    manifest = json.loads((sim_dir / "simulation.json").read_text())
    assert manifest["config"]["pairs"] == 16
    assert SimulationConfig.model_validate(manifest["config"]).size == 48
    files = sorted(sim_dir.glob("*/pair_*.tif"))
    assert len(files) == 16 == len(manifest["pairs"])
    for record in manifest["pairs"]:
        path = sim_dir / record["file"]
        assert path.parent.name == record["split"]
        with tifffile.TiffFile(path) as tif:
            assert tif.series[0].axes == "CYX"
            data = tif.series[0].asarray()
        assert data.shape == (2, 48, 48) and data.dtype == np.float32
    # the stored target/input are exactly what simulate_pair makes for that seed and index
    config = SimulationConfig.model_validate(manifest["config"])
    first = manifest["pairs"][0]
    pair = simulate_pair(config, first["seed"][1])
    data = tifffile.imread(sim_dir / first["file"])
    assert np.array_equal(data[0], pair.confocal) and np.array_equal(data[1], pair.widefield)


def test_simulate_is_reproducible_and_refuses_to_overwrite(tmp_path: Path) -> None:
    config = SimulationConfig(pairs=4, size=32, seed=9)
    simulate(tmp_path / "a", config, progress=False)
    simulate(tmp_path / "b", config, progress=False)
    for path in sorted((tmp_path / "a").glob("*/*.tif")):
        twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert np.array_equal(tifffile.imread(path), tifffile.imread(twin))
    with pytest.raises(HazeMatchingError, match="already holds simulated pairs"):
        simulate(tmp_path / "a", config, progress=False)
