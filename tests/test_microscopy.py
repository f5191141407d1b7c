"""Microscope files in (CZI, OME-TIFF through bioio; ND2 and LIF dispatch), metadata out.

Real files written on disk: a CZI by pylibCZIrw (Zeiss's own library), OME-TIFFs by tifffile's
OME writer. No writer makes ND2 or LIF files, so those are checked through the reader dispatch
and the plugins' refusals of damaged files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from hazematching.config import OutputFormat, SamplingConfig
from hazematching.data.dataset import load_pairs
from hazematching.data.inputs import input_name, read_input, selector
from hazematching.errors import HazeMatchingError
from hazematching.inference.predict import predict
from hazematching.training.loop import TrainResult
from tests.helpers import PIXEL_UM, Z_UM, invoke, microscope_stack, write_czi, write_ome

SAMPLING = SamplingConfig(samples=2, steps=2, seed=0)
EXTRA = "pip install 'hazematching[formats]'"


@pytest.fixture(scope="module")
def files(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same z-stack as a CZI, an OME-TIFF and a plain TIFF of its GFP channel."""
    folder = tmp_path_factory.mktemp("microscope")
    data = microscope_stack(sim_dir)
    plain = folder / "plain.tif"
    tifffile.imwrite(plain, data[:, 1])
    return {
        "data": folder,
        "czi": write_czi(folder / "sample.czi", data),
        "ome": write_ome(folder / "sample.ome.tif", [data]),
        "scenes": write_ome(folder / "positions.ome.tif", [data, data[::-1]]),
        "plain": plain,
    }


@pytest.fixture(scope="module")
def plain_result(trained: TrainResult, files: dict[str, Path], tmp_path_factory) -> np.ndarray:
    """The (Z, C, Y, X) result of the plain TIFF of the GFP planes."""
    out = tmp_path_factory.mktemp("plain")
    (written,) = predict(trained.best, [files["plain"]], out, SAMPLING, progress=False)
    return tifffile.imread(written)


def test_czi_reads_the_named_channel_with_its_metadata(files: dict[str, Path], sim_dir) -> None:
    planes, metadata = read_input(files["czi"], "GFP")
    np.testing.assert_array_equal(planes, microscope_stack(sim_dir)[:, 1].astype(np.float32))
    assert metadata.pixel_size == pytest.approx((PIXEL_UM, PIXEL_UM))
    assert metadata.z_spacing == pytest.approx(Z_UM)
    assert (metadata.channel, metadata.plane_axis) == ("GFP", "Z")
    by_index, _ = read_input(files["czi"], 0)
    np.testing.assert_array_equal(by_index, microscope_stack(sim_dir)[:, 0].astype(np.float32))


def test_predict_on_a_czi_equals_the_plain_tiff_and_keeps_its_metadata(
    trained: TrainResult, files: dict[str, Path], plain_result: np.ndarray, tmp_path: Path
) -> None:
    done = invoke("predict", trained.best, files["czi"], "--out", tmp_path, "--channel", "GFP",
                  "--samples", "2", "--steps", "2", "--seed", "0", "--no-progress")  # fmt: skip
    assert done.exit_code == 0, done.output
    with tifffile.TiffFile(tmp_path / "sample.tif") as tif:
        result = tif.series[0].asarray()
        imagej = tif.imagej_metadata
        x_resolution = tif.pages.first.tags["XResolution"].value
    np.testing.assert_array_equal(result, plain_result)
    assert tif.series[0].axes == "ZCYX"
    assert imagej["Labels"][:2] == ["mmse", "std"] and imagej["unit"] == "um"
    assert imagej["spacing"] == pytest.approx(Z_UM)
    assert x_resolution[1] / x_resolution[0] == pytest.approx(PIXEL_UM, rel=1e-5)
    assert imagej["Info"] == "source channel: GFP"
    record = json.loads((tmp_path / "predict.json").read_text())
    (kept,) = record["input_metadata"]
    assert kept["pixel_size_um"] == pytest.approx([PIXEL_UM, PIXEL_UM])
    assert (kept["z_spacing_um"], kept["channel"], record["channel"]) == (Z_UM, "GFP", "GFP")


def test_ome_tiff_in_and_out_keeps_pixel_size_and_channel_names(
    trained: TrainResult, files: dict[str, Path], plain_result: np.ndarray, tmp_path: Path
) -> None:
    written = predict(trained.best, [files["ome"]], tmp_path, SAMPLING, channel=1,
                      output_format=OutputFormat.OME_TIFF, progress=False)  # fmt: skip
    assert [p.name for p in written] == ["sample.ome.tif"]
    np.testing.assert_array_equal(tifffile.imread(written[0]), plain_result)
    # read back through bioio, as Fiji's Bio-Formats and OMERO read OME-XML
    result, metadata = read_input(written[0], "std")
    np.testing.assert_array_equal(result, plain_result[:, 1])
    assert metadata.pixel_size == pytest.approx((PIXEL_UM, PIXEL_UM))
    assert metadata.z_spacing == pytest.approx(Z_UM)
    from bioio import BioImage

    assert list(map(str, BioImage(written[0]).channel_names)) == ["mmse", "std"]


def test_a_scene_is_chosen_by_index_or_name(
    trained: TrainResult, files: dict[str, Path], plain_result: np.ndarray, tmp_path: Path
) -> None:
    first, _ = read_input(files["scenes"], "GFP", "Image:0")
    second, metadata = read_input(files["scenes"], "GFP", 1)
    np.testing.assert_array_equal(second, first[::-1])
    assert metadata.scene == "Image:1"
    predict(trained.best, [files["scenes"]], tmp_path, SAMPLING, channel="GFP", scene="Image:0",
            progress=False)  # fmt: skip
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "positions.tif"), plain_result)
    assert json.loads((tmp_path / "predict.json").read_text())["scene"] == "Image:0"


def test_a_time_series_is_written_as_time_points(
    trained: TrainResult, files: dict[str, Path], sim_dir: Path, tmp_path: Path
) -> None:
    series = write_ome(
        files["data"] / "movie.ome.tif", [microscope_stack(sim_dir)[:, 1]], axes="TYX"
    )
    (written,) = predict(trained.best, [series], tmp_path, SAMPLING, progress=False)
    with tifffile.TiffFile(written) as tif:
        assert tif.series[0].axes == "TCYX" and "spacing" not in tif.imagej_metadata
    (record,) = json.loads((tmp_path / "predict.json").read_text())["input_metadata"]
    assert record["planes"] == "T" and record["z_spacing_um"] is None


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("czi", [], "sample.czi: has 2 channels (DAPI, GFP); choose one with --channel"),
        ("czi", ["--channel", "RFP"], "sample.czi: has no channel 'RFP' (channels: DAPI, GFP)"),
        ("czi", ["--channel", "5"], "sample.czi: has 2 channel(s) (DAPI, GFP); channel 5 does"),
        (
            "scenes",
            ["--channel", "GFP"],
            "positions.ome.tif: has 2 scenes (Image:0, Image:1); choose one with --scene",
        ),
        ("scenes", ["--channel", "1", "--scene", "B2"], "has no scene 'B2' (scenes: Image:0"),
        ("plain", ["--channel", "DAPI"], "plain.tif: names no channels"),
        ("plain", ["--scene", "1"], "plain.tif: a plain TIFF has one scene"),
    ],
)
def test_ambiguous_or_unknown_choices_are_refused_in_one_line(
    trained: TrainResult, files: dict[str, Path], tmp_path: Path, source, options, message
) -> None:
    out = tmp_path / "out"
    done = invoke("predict", trained.best, files[source], "--out", out, "--no-progress", *options)
    assert done.exit_code == 1
    assert message in done.output and len(done.output.strip().splitlines()) == 1, done.output
    assert not out.exists()


def test_both_z_and_time_are_refused_naming_the_axes(files: dict[str, Path], sim_dir) -> None:
    movie = np.stack([microscope_stack(sim_dir)[:, 1]] * 2)  # T, Z, Y, X
    path = write_ome(files["data"] / "tz.ome.tif", [movie], axes="TZYX")
    done = invoke("predict", path, "--out", files["data"] / "tz", "--no-progress")
    assert done.exit_code == 1
    expected = f"tz.ome.tif: has axes T=2 C=1 Z={movie.shape[1]} Y={movie.shape[2]}"
    assert expected in done.output and "found T, Z" in done.output


@pytest.mark.parametrize(
    ("suffix", "reason"),
    [
        (".czi", "cannot read as CZI (Not enough data read"),
        (".nd2", "cannot read as ND2 (File is not supported by ND2.)"),
        (".lif", "cannot read as LIF (file is not supported: not a Leica image file"),
    ],
)
def test_damaged_vendor_files_are_refused_by_their_plugin(
    tmp_path: Path, suffix: str, reason: str
) -> None:
    damaged = tmp_path / f"broken{suffix}"
    damaged.write_bytes(b"ZISRAWFILE" + bytes(300))
    out = tmp_path / "out"
    done = invoke("predict", damaged, "--out", out, "--no-progress")
    assert done.exit_code == 1
    assert f"error: {damaged}: {reason}" in done.output, done.output
    assert len(done.output.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize(
    ("source", "hidden", "message"),
    [
        ("czi", "bioio_czi", f"reading CZI files needs the bioio plugin bioio-czi: {EXTRA}"),
        ("czi", "bioio", f"reading CZI files needs the optional formats: {EXTRA}"),
        ("ome", "bioio", f"reading OME-TIFF files needs the optional formats: {EXTRA}"),
    ],
)
def test_a_missing_reader_names_the_extra(
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    hidden: str,
    message: str,
) -> None:
    monkeypatch.setitem(sys.modules, hidden, None)  # what `import` finds when not installed
    out = tmp_path / "out"
    done = invoke("predict", files[source], "--out", out, "--channel", "0", "--no-progress")
    assert done.exit_code == 1
    assert f"error: {files[source]}: {message}" in done.output, done.output
    assert not out.exists()


def test_paired_data_folders_take_microscope_files(files: dict[str, Path], sim_dir) -> None:
    """`train` and `evaluate` read input/ and target/ folders of CZIs like TIFF folders."""
    data = microscope_stack(sim_dir)
    folder = files["data"] / "pairs"
    for side, channel in (("input", 1), ("target", 0)):
        (folder / side).mkdir(parents=True)
        write_czi(folder / side / "cell.czi", data[:, channel : channel + 1])
    pairs = load_pairs(folder)
    assert len(pairs) == len(data)
    np.testing.assert_array_equal(pairs.inputs[-1], data[-1, 1].astype(np.float32))
    np.testing.assert_array_equal(pairs.targets[0], data[0, 0].astype(np.float32))
    write_czi(folder / "input" / "cell.czi", data)  # both channels: which one is the input?
    with pytest.raises(HazeMatchingError, match=r"cell\.czi: has 2 channels"):
        load_pairs(folder)


@pytest.mark.parametrize(
    ("path", "name"),
    [("a/cell.czi", "cell"), ("cell.ome.tif", "cell"), ("x.ome.zarr", "x"), ("y.TIF", "y")],
)
def test_output_names_drop_the_format_suffix(path: str, name: str) -> None:
    assert input_name(Path(path)) == name


def test_selectors_are_indices_when_numbers() -> None:
    assert (selector("1"), selector("DAPI"), selector(None)) == (1, "DAPI", None)
