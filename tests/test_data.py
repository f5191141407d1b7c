"""TIFF reading in every accepted layout, data discovery, statistics and patches, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from hazematching.data.dataset import (
    PairedImages,
    PatchSampler,
    load_pairs,
    load_training_data,
    split_by_file,
)
from hazematching.data.normalization import DatasetNormalization
from hazematching.data.tiff import read_pair, read_single, write_tiff
from hazematching.errors import HazeMatchingError


def _pair(rng: np.random.Generator, shape: tuple[int, ...] = (2, 40, 40)) -> np.ndarray:
    return rng.random(shape).astype(np.float32)


def test_pair_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    plain = _pair(rng)
    tifffile.imwrite(tmp_path / "plain.tif", plain)  # the paper's layout, no axes metadata
    x, y = read_pair(tmp_path / "plain.tif")
    assert np.array_equal(x[0], plain[1]) and np.array_equal(y[0], plain[0])

    stack = _pair(rng, (3, 2, 40, 40))  # Z, C, Y, X
    write_tiff(tmp_path / "stack.tif", stack, "ZCYX")
    x, y = read_pair(tmp_path / "stack.tif")
    assert x.shape == (3, 40, 40) and np.array_equal(y[2], stack[2, 0])

    as_uint16 = (plain * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "int.tif", as_uint16)
    x, _ = read_pair(tmp_path / "int.tif")
    assert x.dtype == np.float32 and np.array_equal(x[0], as_uint16[1].astype(np.float32))


def test_single_channel_reading(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image = rng.random((30, 20)).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", image)
    assert np.array_equal(read_single(tmp_path / "a.tif")[0], image)
    stack = rng.random((4, 30, 20)).astype(np.float32)
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack")
    assert read_single(tmp_path / "z.tif").shape == (4, 30, 20)
    write_tiff(tmp_path / "pair.tif", _pair(rng), "CYX")
    assert read_single(tmp_path / "pair.tif", channel=1).shape == (1, 40, 40)
    with pytest.raises(HazeMatchingError, match=r"pair\.tif: expected 1 channel, found 2"):
        read_single(tmp_path / "pair.tif")
    with pytest.raises(HazeMatchingError, match="channel 5 does not exist"):
        read_single(tmp_path / "pair.tif", channel=5)
    rgb = (rng.random((30, 20, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    with pytest.raises(HazeMatchingError, match="found 3 channel"):
        read_single(tmp_path / "rgb.tif")
    assert np.array_equal(read_single(tmp_path / "rgb.tif", channel=2)[0], rgb[..., 2])


@pytest.mark.parametrize(
    ("writer", "message"),
    [
        (lambda p: tifffile.imwrite(p, np.zeros((40, 40), np.float32)), "expected a pair"),
        (lambda p: tifffile.imwrite(p, np.full((2, 8, 8), np.nan, np.float32)), "NaN or infinite"),
        (
            lambda p: tifffile.imwrite(p, np.zeros((2, 8, 8), np.complex64)),
            "unsupported pixel type",
        ),
        (lambda p: p.write_bytes(b"this is not a tiff"), "cannot read as TIFF"),
    ],
    ids=["one-channel", "nan", "complex", "not-a-tiff"],
)
def test_bad_pair_files_name_file_and_problem(tmp_path: Path, writer, message: str) -> None:
    path = tmp_path / "bad.tif"
    writer(path)
    with pytest.raises(HazeMatchingError, match=message) as error:
        read_pair(path)
    assert str(error.value).startswith(str(path))
    assert "\n" not in str(error.value)


def test_truncated_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.ones((2, 64, 64), np.float32))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(HazeMatchingError, match=r"cut\.tif: cannot read as TIFF"):
        read_pair(path)
    with pytest.raises(HazeMatchingError, match="file not found"):
        read_pair(tmp_path / "missing.tif")


def test_input_target_folders_are_matched_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for folder in ("input", "target"):
        (tmp_path / folder).mkdir()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / "input" / name, rng.random((32, 32)).astype(np.float32))
        tifffile.imwrite(tmp_path / "target" / name, rng.random((32, 32)).astype(np.float32))
    pairs = load_pairs(tmp_path)
    assert [p.name for p in pairs.sources] == ["a.tif", "b.tif"]
    assert np.array_equal(pairs.targets[1], tifffile.imread(tmp_path / "target" / "b.tif"))

    tifffile.imwrite(tmp_path / "target" / "b.tif", rng.random((32, 30)).astype(np.float32))
    with pytest.raises(HazeMatchingError, match="does not match target shape"):
        load_pairs(tmp_path)
    tifffile.imwrite(tmp_path / "input" / "c.tif", rng.random((32, 32)).astype(np.float32))
    with pytest.raises(HazeMatchingError, match=r"without a partner.*c\.tif"):
        load_pairs(tmp_path)


def test_training_data_from_simulated_folder(sim_dir: Path) -> None:
    train, val = load_training_data(sim_dir, 0.1, 0)
    assert {p.parent.name for p in train.sources} == {"train"}
    assert {p.parent.name for p in val.sources} == {"val"}


def test_flat_folder_is_split_by_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for i in range(10):
        write_tiff(tmp_path / f"p{i}.tif", _pair(rng, (2, 2, 16, 16)), "ZCYX")
    train, val = load_training_data(tmp_path, 0.2, seed=5)
    assert len(set(val.sources)) == 2 and len(set(train.sources)) == 8
    assert not set(train.sources) & set(val.sources)
    again, _ = load_training_data(tmp_path, 0.2, seed=5)
    assert again.sources == train.sources
    other, _ = load_training_data(tmp_path, 0.2, seed=6)
    assert set(other.sources) != set(train.sources)


def test_split_needs_two_files(tmp_path: Path) -> None:
    pairs = PairedImages([np.zeros((8, 8))], [np.zeros((8, 8))], [tmp_path / "only.tif"])
    with pytest.raises(HazeMatchingError, match="at least 2 files"):
        split_by_file(pairs, 0.1, 0)


def test_normalization_statistics() -> None:
    rng = np.random.default_rng(4)
    inputs = [rng.normal(5, 2, (50, 60)), rng.normal(5, 2, (30, 30))]
    targets = [rng.normal(-1, 0.5, (50, 60)), rng.normal(-1, 0.5, (30, 30))]
    norm = DatasetNormalization.from_images(inputs, targets)
    every = np.concatenate([x.ravel() for x in inputs])
    assert norm.input_mean == pytest.approx(every.mean())
    assert norm.input_std == pytest.approx(every.std())
    fixed = norm.intensity_map()
    restored = fixed.denormalize_target(fixed.normalize_target(targets[0]))
    np.testing.assert_allclose(restored, targets[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(HazeMatchingError, match="constant"):
        DatasetNormalization.from_images([np.ones((4, 4))], targets)


def test_patches_are_reproducible_and_augmented() -> None:
    rng = np.random.default_rng(5)
    image = rng.random((40, 50)).astype(np.float32)
    pairs = PairedImages([image], [image * 2], [Path("x.tif")])
    norm = DatasetNormalization.from_images(pairs.inputs, pairs.targets)
    sampler = PatchSampler(pairs, norm, 16)
    a = sampler.sample(np.random.default_rng(1), 32)
    b = sampler.sample(np.random.default_rng(1), 32)
    assert a[0].shape == (32, 1, 16, 16)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # target patches are the same crops/transforms as the input patches
    np.testing.assert_allclose(
        a[1],
        ((a[0] * (norm.input_std + 1e-6) + norm.input_mean) * 2 - norm.target_mean)
        / (norm.target_std + 1e-6),
        atol=1e-4,
    )
    with pytest.raises(HazeMatchingError, match="smaller than the patch size 64"):
        PatchSampler(pairs, norm, 64)
