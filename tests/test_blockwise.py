"""Large images block by block: block geometry and blending, global-coordinate noise, the
OME-Zarr and large-TIFF paths of `predict`, and their one-line errors."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
import zarr
from ome_zarr.writer import write_image
from pydantic import ValidationError

from hazematching.config import BlockConfig, SamplingConfig
from hazematching.errors import HazeMatchingError
from hazematching.inference.blocks import BlockGrid
from hazematching.inference.blockwise import InProcess, Region, sample_plane
from hazematching.inference.bundled import bundled_model
from hazematching.inference.predict import predict
from hazematching.inference.runner import block_source
from hazematching.inference.sampling import script_sampler
from hazematching.metrics.distortion import seam_ratio
from hazematching.model.sampler import EulerSampler
from tests.helpers import GuideField, invoke

SAMPLING = SamplingConfig(samples=3, steps=2, seed=0, keep_samples=True)
BLOCKS = BlockConfig(block=32, halo=8, above=48 * 48 - 1)


def _store(path: Path, image: np.ndarray, scale: dict[str, float] | None = None) -> Path:
    write_image(
        image, zarr.open_group(str(path), mode="w"), axes="yx", scale_factors=(), scale=scale
    )
    return path


@pytest.fixture(scope="module")
def hazy(sim_dir: Path) -> np.ndarray:
    """A 96 x 80 widefield image: four simulated 48 px inputs side by side, cropped."""
    inputs = [tifffile.imread(p)[1] for p in sorted(sim_dir.glob("*/pair_*.tif"))[:4]]
    return np.block([[inputs[0], inputs[1]], [inputs[2], inputs[3]]])[:, :80].astype(np.float32)


# --- geometry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "complementary"),
    [(80, 112, True), (64, 64, True), (100, 70, False), (33, 97, False)],
)
def test_blending_weights_cover_every_core(height: int, width: int, complementary: bool) -> None:
    """Cores tile the image, weights are positive over every grown block, and where every
    core is at least a halo wide two neighbours' ramps sum to one (no normalisation needed);
    a last core narrower than the halo is covered by its neighbour's full weight."""
    grid = BlockGrid(height, width, BlockConfig(block=32, halo=8))
    total = np.zeros((height, width))
    covered = np.zeros((height, width), dtype=int)
    for block in grid.blocks():
        rows, cols = block.slices(block.grown)
        total[rows, cols] += grid.weight(block)
        covered[block.slices(block.core)] += 1
        assert (grid.weight(block) > 0).all()
    assert (covered == 1).all()
    if complementary:
        np.testing.assert_allclose(total, 1.0)
    else:  # the full-weight neighbour plus the tail's ramp: between 1 and 2 along each axis
        assert total.min() >= 1.0 - 1e-12 and total.max() < 4.0


def test_a_block_smaller_than_twice_the_halo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="smaller than twice the halo"):
        BlockConfig(block=48, halo=32)
    out = tmp_path / "o"
    done = invoke("predict", "x.ome.zarr", "--out", out, "--block", "48", "--halo", "32")
    assert done.exit_code == 1 and "twice the halo" in done.output
    assert len(done.output.strip().splitlines()) == 1 and not out.exists()


# --- exactness with a pointwise field -----------------------------------------------------------


def _guide_block(sampler: torch.jit.ScriptModule, region: Region) -> np.ndarray:
    hazy = torch.from_numpy(region.read())[None, None]
    with torch.no_grad():
        return sampler.sample_at(hazy, region.rows[0], region.cols[0])[0].numpy()


@pytest.mark.parametrize("halo", [0, 8])
def test_blocks_reproduce_the_whole_image_for_a_pointwise_field(halo: int) -> None:
    """v = hazy has no spatial context, so every block, started from the whole image's noise at
    its place, computes exactly the whole image's values there: blending must give them back
    in the MMSE, the std and each sample."""
    sampler = script_sampler(
        EulerSampler(
            GuideField(),
            steps=2,
            samples=3,
            seed=5,
            batch_size=2,
            size_multiple=4,
            keep_samples=True,
        )
    )
    image = torch.randn(1, 1, 70, 90, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = sampler(image)[0].numpy()
    grid = BlockGrid(70, 90, BlockConfig(block=32, halo=halo))
    blocked = np.full_like(whole, np.nan)
    plane = image[0, 0].numpy()
    task = functools.partial(_guide_block, sampler)
    for (rows, cols), result in sample_plane(
        InProcess(), task, grid, lambda r, c: Region(r, c, array=plane[slice(*r), slice(*c)])
    ):
        blocked[:, rows, cols] = result
    np.testing.assert_allclose(blocked, whole, rtol=0, atol=1e-5)


# --- predict on OME-Zarr and large TIFFs ----------------------------------------------------------


def test_ome_zarr_input_gives_a_seam_free_ome_zarr_result(
    trained, hazy: np.ndarray, tmp_path: Path
) -> None:
    store = _store(tmp_path / "scan.ome.zarr", hazy, {"y": 0.1, "x": 0.1})
    out = tmp_path / "out"
    (written,) = predict(trained.best, [store], out, SAMPLING, progress=False, blocks=BLOCKS)
    assert written == out / "scan.ome.zarr"
    group = zarr.open_group(str(written))
    names = group.attrs["hazematching"]["channels"]
    assert names == ["mmse", "std", "sample_0", "sample_1", "sample_2"]
    (level,) = group.attrs["ome"]["multiscales"][0]["datasets"]
    assert level["coordinateTransformations"][0]["scale"] == [1.0, 0.1, 0.1]
    (level,) = list(group.array_keys())
    values = np.asarray(group[level])
    assert values.shape == (5, 96, 80) and np.isfinite(values).all()
    record = json.loads((out / "predict.json").read_text())
    assert record["blocks"]["block"] == 32 and record["blocks"]["halo"] == 8
    assert (
        record["blocks"]["sampling"]["samples"] == 3
        and record["blocks"]["output_channels"] == names
    )
    # the same image as a TIFF above the size limit takes the same path to the same numbers
    tiff = tmp_path / "scan.tif"
    tifffile.imwrite(tiff, hazy)
    (as_tiff,) = predict(
        trained.best, [tiff], tmp_path / "t", SAMPLING, progress=False, blocks=BLOCKS
    )
    assert np.array_equal(tifffile.imread(as_tiff), values)
    # whole-image sampling of the same image, for the seams and the MMSE
    whole = tifffile.imread(
        predict(
            trained.best,
            [tiff],
            tmp_path / "w",
            SAMPLING,
            progress=False,
            blocks=BLOCKS.model_copy(update={"above": 96 * 80}),
        )[0]
    )
    borders = [32, 64]
    # Single samples: no step where blocks meet. The ratio of so small an image scatters by a
    # few percent from texture alone, so it is set against the whole image's at the same rows.
    samples, reference = values[2:], whole[2:]
    assert seam_ratio(samples, borders, borders) < 1.02 * seam_ratio(reference, borders, borders)
    # the blocks see all the context that matters: the MMSE and every sample differ from the
    # whole image's by a small fraction of the posterior spread
    spread = np.sqrt(np.mean(whole[1] ** 2))
    for channel in (0, 2, 3, 4):
        assert np.sqrt(np.mean((values[channel] - whole[channel]) ** 2)) < 0.02 * spread


def test_a_stack_gives_one_result_per_plane(trained, hazy: np.ndarray, tmp_path: Path) -> None:
    """Planes along z are sampled one after the other, each as its own image would be."""
    stack = np.stack([hazy[:48, :64], hazy[48:, 16:]])
    group = zarr.open_group(str(tmp_path / "stack.ome.zarr"), mode="w")
    write_image(stack, group, axes="zyx", scale_factors=())
    (written,) = predict(
        trained.best,
        [tmp_path / "stack.ome.zarr"],
        tmp_path / "out",
        SAMPLING,
        progress=False,
        blocks=BLOCKS,
    )
    result = zarr.open_group(str(written))
    (level,) = list(result.array_keys())
    values = np.asarray(result[level])
    assert values.shape == (5, 2, 48, 64)  # C, Z, Y, X: channels before space in OME-NGFF
    single = _store(tmp_path / "plane.ome.zarr", stack[1])
    (alone,) = predict(
        trained.best, [single], tmp_path / "one", SAMPLING, progress=False, blocks=BLOCKS
    )
    assert np.array_equal(values[:, 1], np.asarray(zarr.open_group(str(alone))[level]))


def test_bad_large_inputs_are_one_line_errors_and_write_nothing(
    trained, hazy: np.ndarray, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.ome.zarr"
    zarr.open_group(str(empty), mode="w")
    broken = hazy.copy()
    broken[70, 20] = np.nan
    nan = _store(tmp_path / "nan.ome.zarr", broken)
    for source, message in ((empty, "without image data"), (nan, "NaN")):
        done = invoke(
            "predict",
            trained.best,
            source,
            "--out",
            tmp_path / "o",
            "--samples",
            "2",
            "--steps",
            "1",
            "--block",
            "32",
            "--halo",
            "8",
            "--no-progress",
        )
        assert done.exit_code == 1 and message in done.output and str(source) in done.output
        assert len(done.output.strip().splitlines()) == 1
        leftovers = (
            [p.name for p in (tmp_path / "o").glob("*")] if (tmp_path / "o").exists() else []
        )
        assert not [name for name in leftovers if name.endswith(".zarr") or ".tmp" in name]


def test_a_package_is_sampled_block_wise_through_the_checkpoint_it_ships(tmp_path: Path) -> None:
    package = bundled_model()
    blocks = block_source(package, None)
    checkpoint, sampling = blocks.checkpoint, blocks.sampling
    assert checkpoint == package / "training" / "best.pt"
    recorded = yaml.safe_load((package / "rdf.yaml").read_text())["config"]["hazematching"]
    assert sampling == SamplingConfig.model_validate(recorded["sampling"])
    bare = tmp_path / "bare"
    shutil.copytree(package, bare, ignore=shutil.ignore_patterns("training"))
    with pytest.raises(HazeMatchingError, match="samples whole images only") as error:
        block_source(bare, None).require(bare)
    assert str(bare) in str(error.value)
