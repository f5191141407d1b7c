"""Export to a BioImage.IO package, tested with the real bioimageio.core and plain TorchScript."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

from hazematching.bioimage.reading import load_package
from hazematching.config import SamplingConfig
from hazematching.errors import HazeMatchingError
from hazematching.export.package import ExportResult, export_package
from hazematching.export.recipe import ExportRecipe, default_recipe, load_recipe
from hazematching.inference.package import run_package
from hazematching.inference.planes import predict_planes
from hazematching.inference.predict import predict
from hazematching.inference.sampling import build_sampler
from hazematching.model import sampler as sampler_module
from hazematching.model.checkpoint import load_checkpoint
from hazematching.model.trained import load_trained_model
from hazematching.training.loop import TrainResult
from tests.helpers import invoke

RECIPE = default_recipe().model_copy(
    update={"sampling": SamplingConfig(samples=2, steps=3), "test_size": 32}
)
SAMPLING = SamplingConfig(samples=2, steps=3, seed=0)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def package(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return export_package(trained.best, tmp_path_factory.mktemp("pkg") / "model.zip", RECIPE)


@pytest.fixture(scope="module")
def unpacked(package: ExportResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(folder)
    return folder


def _torchscript(unpacked: Path) -> torch.jit.ScriptModule:
    rdf = yaml.safe_load((unpacked / "rdf.yaml").read_text())
    return torch.jit.load(str(unpacked / rdf["weights"]["torchscript"]["source"]))


def test_export_passes_test_model_for_both_weight_formats(package: ExportResult) -> None:
    from bioimageio.core import test_model

    assert package.status == "passed" and package.size_bytes > 0
    for weight_format in ("torchscript", "pytorch_state_dict"):
        summary = test_model(package.path, weight_format=weight_format)
        assert summary.status == "passed", summary.format()
        assert any(weight_format in d.name for d in summary.details)


def test_description_contents(unpacked: Path, trained: TrainResult) -> None:
    rdf = yaml.safe_load((unpacked / "rdf.yaml").read_text())
    (hazy,), (dehazed,) = rdf["inputs"], rdf["outputs"]
    assert [a["type"] for a in hazy["axes"]] == ["batch", "channel", "space", "space"]
    assert [a["type"] for a in dehazed["axes"]] == ["batch", "channel", "space", "space"]
    assert dehazed["axes"][1]["channel_names"] == ["mmse", "std"]
    # the sampler maps intensities itself: no processing that consumer tools apply unevenly
    assert {p["id"] for p in hazy["preprocessing"]} <= {"ensure_dtype"}
    assert {p["id"] for p in dehazed["postprocessing"]} <= {"ensure_dtype"}
    # the form deployed readers open (bioimage/readers.py), and the nickname JDLL lists it by
    assert rdf["format_version"] == "0.5.10"
    assert rdf["documentation"] == "README.md" and rdf["covers"] == ["cover.png"]
    assert rdf["config"]["bioimageio"]["nickname"] == "hazematching-dehazing"  # kind: in the name
    weights = rdf["weights"]
    assert weights["torchscript"]["parent"] == "pytorch_state_dict"
    assert weights["torchscript"]["pytorch_version"]
    assert weights["pytorch_state_dict"]["architecture"]["callable"] == "PackagedSampler"
    tolerance = rdf["config"]["bioimageio"]["reproducibility_tolerance"][0]
    assert tolerance["output_ids"] == ["dehazed"] and tolerance["absolute_tolerance"] > 0
    assert rdf["config"]["hazematching"]["sampling"]["samples"] == 2
    # tiles are blended inside the model; consumers that tile crop a halo (JDLL with tiling off
    # fails on axes with a size step, so deepImageJ may tile)
    assert [a["halo"] for a in dehazed["axes"][2:]] == [8, 8]  # tile 32 // 4
    assert hazy["axes"][2]["size"] == {"min": 24, "step": 8}  # smallest multiple of 8 > 2 * 8
    assert rdf["config"]["deepimagej"] == {"allow_tiling": True}
    assert "2506.22397" in rdf["cite"][0]["url"]
    card = (unpacked / rdf["documentation"]).read_text()
    assert "## Validation" in card and "Ray" in card
    # the card's step and validation loss are those of the exported checkpoint's own history
    checkpoint = load_checkpoint(trained.best)
    best = min(checkpoint.history, key=lambda entry: entry["val_loss"])
    assert (
        f"| steps | {checkpoint.config.steps} (exported checkpoint: step {checkpoint.step}) |"
        in card
    )
    assert f"best {best['val_loss']:.4f} at step {best['step']} of the validations" in card
    cover = unpacked / rdf["covers"][0]
    assert cover.stat().st_size < 500_000
    # sample tensors hold the same values as the test tensors
    test_input = np.load(unpacked / hazy["test_tensor"]["source"])
    sample_input = tifffile.imread(unpacked / hazy["sample_tensor"]["source"])
    assert np.array_equal(test_input[0], sample_input.reshape(test_input[0].shape))
    # the bare TorchScript takes the test input's intensities and gives the test output's
    with torch.no_grad():
        raw = _torchscript(unpacked)(torch.from_numpy(test_input)).numpy()
    expected = np.load(unpacked / dehazed["test_tensor"]["source"])
    np.testing.assert_allclose(raw, expected, rtol=1e-3, atol=tolerance["absolute_tolerance"])


def test_architecture_file_is_the_sampler_and_its_environment_pins_torchcfm(
    unpacked: Path,
) -> None:
    """The state-dict weights rebuild torchcfm's U-Net: the zoo's environment needs that one."""
    rdf = yaml.safe_load((unpacked / "rdf.yaml").read_text())
    state = rdf["weights"]["pytorch_state_dict"]
    shipped = unpacked / state["architecture"]["source"]
    assert shipped.read_bytes() == Path(sampler_module.__file__).read_bytes()
    assert "def run_with_progress" not in shipped.read_text()  # host-side helpers stay home
    environment = yaml.safe_load((unpacked / state["dependencies"]["source"]).read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert pip == [f"torchcfm=={importlib.metadata.version('torchcfm')}"]


def test_plain_torchscript_runs_other_size_and_batch(unpacked: Path) -> None:
    sampler = _torchscript(unpacked)
    images = torch.randn(2, 1, 48, 40)
    with torch.no_grad():
        both = sampler(images)
        second = sampler(images[1:])
    assert both.shape == (2, 2, 48, 40) and torch.isfinite(both).all()
    # in intensities: the absolute tolerance scales with the output
    torch.testing.assert_close(both[1:], second, rtol=1e-5, atol=1e-5 * float(both.abs().max()))


def test_package_matches_checkpoint_prediction(
    package: ExportResult, trained: TrainResult, tmp_path: Path
) -> None:
    image = (np.random.default_rng(0).random((36, 50)) * 300).astype(np.float32)
    tifffile.imwrite(tmp_path / "hazy.tif", image)
    (from_package,) = predict(
        package.path, [tmp_path / "hazy.tif"], tmp_path / "pkg", progress=False
    )
    (from_checkpoint,) = predict(
        trained.best, [tmp_path / "hazy.tif"], tmp_path / "ckpt", SAMPLING, progress=False
    )
    packaged, library = tifffile.imread(from_package), tifffile.imread(from_checkpoint)
    assert packaged.shape == library.shape == (2, 36, 50)
    np.testing.assert_allclose(packaged, library, rtol=1e-4, atol=1e-4 * np.abs(library).max())
    with pytest.raises(HazeMatchingError, match="baked into a package"):
        predict(package.path, [tmp_path / "hazy.tif"], tmp_path / "x", SAMPLING, progress=False)


def test_core_predict_on_a_tiled_image_matches_library(
    package: ExportResult, trained: TrainResult
) -> None:
    """An image of many tiles (the tiny model samples tiles 32 px apart) through bioimageio.core."""
    image = (np.random.default_rng(1).random((1, 256, 224)) * 300).astype(np.float32)
    packaged = run_package(load_package(package.path), image, "cpu", lambda: None)
    model = load_trained_model(trained.best)
    library = predict_planes(model, build_sampler(model, SAMPLING, torch.device("cpu")), image)
    assert packaged.shape == (1, 2, 256, 224)
    scale = np.abs(library.mmse).max()
    np.testing.assert_allclose(packaged[:, 0], library.mmse, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(packaged[:, 1], library.std, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("bits", [None, 8, 16])
def test_package_in_core_follows_gain_and_offset(package: ExportResult, bits: int | None) -> None:
    """A per-image package computes its input's percentiles itself: through bioimageio.core,
    MMSE(a x + b) == a MMSE(x) + b and std(a x + b) == |a| std(x), also on camera counts."""
    image = np.random.default_rng(3).gamma(2.0, 40.0, (1, 40, 48)).astype(np.float32)
    if bits is not None:
        full = 2.0**bits - 1
        image = np.clip(np.round(image * 0.6 * full / image.max() + 0.02 * full), 0, full)
    descr = load_package(package.path)
    base = run_package(descr, image, "cpu", lambda: None)[0]
    for gain, offset in [(1e-2, 0.0), (10.0, 100.0)]:
        moved = run_package(descr, gain * image + offset, "cpu", lambda: None)[0]
        scale = gain * float(np.abs(base).max())
        np.testing.assert_allclose(moved[0], gain * base[0] + offset, rtol=0, atol=2e-4 * scale)
        np.testing.assert_allclose(moved[1], gain * base[1], rtol=0, atol=2e-4 * scale)


def test_same_output_twice_and_in_a_fresh_process(unpacked: Path, tmp_path: Path) -> None:
    sampler = _torchscript(unpacked)
    rdf = yaml.safe_load((unpacked / "rdf.yaml").read_text())
    x = torch.from_numpy(np.load(unpacked / rdf["inputs"][0]["test_tensor"]["source"]))
    with torch.no_grad():
        first, second = sampler(x), sampler(x)
    assert torch.equal(first, second)
    script = (
        "import sys, numpy, torch\n"
        "m = torch.jit.load(sys.argv[1])\n"
        "x = torch.from_numpy(numpy.load(sys.argv[2]))\n"
        "torch.manual_seed(int(sys.argv[4]))\n"
        "numpy.save(sys.argv[3], m(x).detach().numpy())\n"
    )
    source = str(unpacked / rdf["weights"]["torchscript"]["source"])
    tensor = str(unpacked / rdf["inputs"][0]["test_tensor"]["source"])
    for seed in ("0", "123"):  # the global seed must not matter
        out = tmp_path / f"out{seed}.npy"
        subprocess.run([sys.executable, "-c", script, source, tensor, str(out), seed], check=True)
        assert np.array_equal(np.load(out), first.numpy())


def test_bioimageio_cli_passes_offline(package: ExportResult) -> None:
    exe = shutil.which("bioimageio") or str(Path(sys.executable).parent / "bioimageio")
    done = subprocess.run(
        [exe, "test", str(package.path)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "passed" in done.stdout


def test_recipes_load_and_reject_mistakes(tmp_path: Path) -> None:
    recipe = load_recipe(REPO / "packaging" / "example.toml")
    assert recipe.sampling is not None and recipe.sampling.samples == 4 and recipe.authors[0].name
    (tmp_path / "typo.toml").write_text(
        'name = "Some model"\ndescription = "A model with a typo."\nsampels = 3\n'
        '[[authors]]\nname = "A"\n'
    )
    with pytest.raises(HazeMatchingError, match="sampels: Extra inputs are not permitted"):
        load_recipe(tmp_path / "typo.toml")
    (tmp_path / "short.toml").write_text('name = "Some model"\n')
    with pytest.raises(HazeMatchingError, match="description: Field required"):
        load_recipe(tmp_path / "short.toml")
    (tmp_path / "broken.toml").write_text("name = \n")
    with pytest.raises(HazeMatchingError, match="cannot read recipe"):
        load_recipe(tmp_path / "broken.toml")
    with pytest.raises(HazeMatchingError, match="recipe not found"):
        load_recipe(tmp_path / "none.toml")


def test_export_errors_leave_no_zip(trained: TrainResult, tmp_path: Path) -> None:
    out = tmp_path / "model.zip"
    with pytest.raises(HazeMatchingError, match="output folder does not exist"):
        export_package(trained.best, tmp_path / "missing" / "model.zip", RECIPE)
    with pytest.raises(HazeMatchingError, match="model not found"):
        export_package(tmp_path / "none.pt", out, RECIPE)
    (tmp_path / "bad.pt").write_bytes(b"corrupt")
    with pytest.raises(HazeMatchingError, match="not a readable checkpoint"):
        export_package(tmp_path / "bad.pt", out, RECIPE)
    with pytest.raises(HazeMatchingError, match=r"must end with \.zip"):
        export_package(trained.best, tmp_path / "model.tar", RECIPE)
    with pytest.raises(HazeMatchingError, match="smaller than the package's minimum input size 40"):
        export_package(trained.best, out, RECIPE.model_copy(update={"halo": 16}))
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        ExportRecipe.model_validate({**RECIPE.model_dump(), "sampling": {"samples": 0}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--samples", "0"), "samples"),
        (("--steps", "0"), "steps"),
        (("--recipe", "{tmp}/none.toml"), "recipe not found"),
    ],
)
def test_export_cli_errors(
    trained: TrainResult, tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    args = ["export", trained.best, "--out", tmp_path / "m.zip"]
    done = invoke(*args, *(e.format(tmp=tmp_path) for e in extra))
    assert done.exit_code == 1
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "m.zip").exists()
