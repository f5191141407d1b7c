"""`hazematching export`: a checkpoint becomes a tested BioImage.IO model package (.zip).

The package holds two weight formats of the same sampler: TorchScript (the scripted Euler loop
around the traced network, what Java tools and bioimageio.core run) and a state dict with
`sampler.py` as architecture; both take and return intensities, the model's normalisation
inside. Test outputs are computed by bioimageio.core itself, exactly as `test_model` computes
them, and the package is only kept if `test_model` says `passed`. Its `rdf.yaml` is written in
the form the deployed readers open (`bioimage/readers.py`).
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch
from bioimageio.spec.model import v0_5

from ..bioimage.github import unverified_github_users
from ..bioimage.readers import rewrite_for_deployed_readers
from ..config import SamplingConfig
from ..data.tiff import INPUT_CHANNEL, read_planes
from ..errors import HazeMatchingError
from ..fileio import atomic_path, output_file
from ..inference.loader import open_model
from ..inference.runner import output_channel_names
from ..inference.sampling import (
    build_sampler,
    method_sampling,
    sampler_kwargs,
)
from ..model import sampler as sampler_module
from ..model.checkpoint import Checkpoint, load_checkpoint
from ..model.network import count_parameters, unet_kwargs
from ..model.trained import trained_model_from
from .card import evaluation_markdown, model_card, robustness_markdown
from .cover import write_cover
from .description import (
    PackageFiles,
    absolute_tolerance,
    build_description,
    minimum_input_size,
    reference_output,
)
from .intensities import package_intensities
from .recipe import ExportRecipe, default_recipe


@dataclass(frozen=True)
class ExportResult:
    """The written package, its test status, the export time and the zip size."""

    path: Path
    status: str
    seconds: float
    size_bytes: int


def _test_image(recipe: ExportRecipe, checkpoint: Checkpoint) -> tuple[np.ndarray, Path]:
    """The recipe's hazy test image, or the validation image of the checkpoint with most structure.

    Among the validation images still on disk, the one whose input varies most (largest standard
    deviation; the first on ties) is taken: a nearly empty field would give a test output that
    shows nothing and that BioImage.IO cannot check.
    """
    if recipe.test_image is not None:
        return _hazy_plane(recipe.test_image), recipe.test_image
    found = [
        (_hazy_plane(path), path)
        for path in (Path(p) for p in checkpoint.data.get("val_paths", []))
        if path.is_file()
    ]
    if not found:
        raise HazeMatchingError(
            "no test image: pass --test-image (the validation images of the checkpoint are gone)"
        )
    return max(found, key=lambda item: float(item[0].std()))


def _hazy_plane(path: Path) -> np.ndarray:
    """The first plane of the widefield channel of a paired or single-channel TIFF."""
    planes = read_planes(path, channels=None)
    if planes.shape[1] > 2:
        raise HazeMatchingError(f"test image has {planes.shape[1]} channels", path)
    return planes[0, INPUT_CHANNEL if planes.shape[1] == 2 else 0]


def centre_crop(image: np.ndarray, size: int, multiple: int, source: Path) -> np.ndarray:
    """A square centre crop of side min(size, image), rounded down to `multiple`."""
    side = min(size, *image.shape) // multiple * multiple
    if side < multiple:
        raise HazeMatchingError(
            f"test image {image.shape[0]}x{image.shape[1]} is smaller than {multiple} pixels",
            source,
        )
    y0, x0 = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return np.ascontiguousarray(image[y0 : y0 + side, x0 : x0 + side])


def write_tensor(folder: Path, stem: str, data: np.ndarray) -> tuple[Path, Path]:
    """The tensor as .npy (test tensor) and as ImageJ TIFF (sample tensor, same values)."""
    npy, tif = folder / f"{stem}.npy", folder / f"{stem}.tif"
    np.save(npy, data.astype(np.float32))
    tifffile.imwrite(tif, data[0].astype(np.float32), imagej=True, metadata={"axes": "CYX"})
    return npy, tif


def environment_yaml() -> str:
    """The conda environment of the state-dict weights: what `hazematching_sampler.py` imports.

    torchcfm is pinned to the version installed here: the architecture file builds torchcfm's
    `UNetModel` and walks its internals, so the zoo's checks, which build this environment,
    must get the very U-Net whose state dict the package holds.
    """
    torch_version = torch.__version__.split("+")[0]
    return (
        "name: hazematching\nchannels: [conda-forge]\ndependencies:\n  - python>=3.10\n"
        f"  - pytorch>={torch_version}\n  - pip\n  - pip:\n"
        f"      - torchcfm=={importlib.metadata.version('torchcfm')}\n"
    )


def package_path(out_path: Path) -> Path:
    """Where a package may be written: a .zip name in an existing, writable folder."""
    out_path = Path(out_path)
    if out_path.suffix != ".zip":
        raise HazeMatchingError("the package name must end with .zip", out_path)
    return output_file(out_path)


def export_package(
    checkpoint_path: Path, out_path: Path, recipe: ExportRecipe | None = None
) -> ExportResult:
    """Export a checkpoint to `out_path` (.zip), test it with bioimageio.core, keep it if passed.

    Nothing is left at `out_path` unless the package passed: it is built in a temporary file and
    renamed at the end.
    """
    start = time.perf_counter()
    recipe = recipe or default_recipe()
    out_path = package_path(out_path)
    source = open_model(checkpoint_path, "export")
    if source.kind != "checkpoint":
        raise HazeMatchingError("not a checkpoint; `export_model` exports every kind", source.path)
    checkpoint = load_checkpoint(source.file)
    model = trained_model_from(checkpoint, source.file)
    sampling = method_sampling(
        checkpoint.config, recipe.sampling or SamplingConfig(), checkpoint.calibration
    )
    multiple = checkpoint.config.network.size_multiple
    image, source = _test_image(recipe, checkpoint)
    hazy = centre_crop(image, recipe.test_size or checkpoint.config.patch_size, multiple, source)
    channel_names = output_channel_names(sampling)
    tile, _ = sampling.tiling(checkpoint.config.patch_size)
    halo = tile // 4 if recipe.halo is None else recipe.halo
    smallest = minimum_input_size(multiple, halo)
    if hazy.shape[-1] < smallest:
        raise HazeMatchingError(
            f"the {hazy.shape[-1]} px test tensor is smaller than the package's minimum input "
            f"size {smallest} (halo {halo}); raise test_size or lower halo",
            source,
        )
    intensities = package_intensities(checkpoint.normalization)
    kwargs = {**sampler_kwargs(checkpoint.config, sampling, checkpoint.calibration), **intensities}
    evaluation = evaluation_markdown(recipe.evaluation, checkpoint_path, checkpoint.calibration)
    robustness = robustness_markdown(recipe.robustness, checkpoint_path)

    with export_folder(recipe) as folder:
        scripted = build_sampler(
            model, sampling, torch.device("cpu"), channels_last=False, intensities=intensities
        )
        scripted.save(str(folder / "sampler_torchscript.pt"))
        state = {f"velocity.{k}": v for k, v in model.velocity.state_dict().items()}
        torch.save(state, folder / "sampler_state_dict.pt")
        shutil.copyfile(sampler_module.__file__, folder / "hazematching_sampler.py")
        (folder / "environment.yaml").write_text(environment_yaml())
        test_input = hazy[None, None].astype(np.float32)
        input_npy, input_tif = write_tensor(folder, "test_input", test_input)
        with torch.no_grad():
            packaged_output = scripted(torch.from_numpy(test_input)).numpy()  # (1, C, Y, X)
        files = PackageFiles(
            folder=folder,
            test_input=input_npy,
            sample_input=input_tif,
            torchscript=folder / "sampler_torchscript.pt",
            state_dict=folder / "sampler_state_dict.pt",
            architecture=folder / "hazematching_sampler.py",
            environment=folder / "environment.yaml",
            cover=folder / "cover.png",
            documentation=folder / "README.md",
        )
        write_cover(files.cover, hazy, packaged_output[0, 0], packaged_output[0, 1])
        files.documentation.write_text(
            model_card(
                recipe,
                checkpoint,
                sampling,
                channel_names,
                count_parameters(model.velocity),
                evaluation,
                robustness,
            )
        )
        architecture_kwargs = {
            "unet": unet_kwargs(checkpoint.config.network, checkpoint.config.patch_size),
            **kwargs,
        }

        def describe(output: np.ndarray) -> v0_5.ModelDescr:
            test_output, sample_output = write_tensor(folder, "test_output", output)
            return build_description(
                recipe=recipe,
                checkpoint=checkpoint,
                sampling=sampling,
                channel_names=channel_names,
                files=files,
                test_output=test_output,
                sample_output=sample_output,
                architecture_kwargs=architecture_kwargs,
                tolerance=absolute_tolerance(output),
                halo=halo,
            )

        # bioimageio.core computes the test output from the description itself, so the package
        # reproduces exactly what `test_model` will compute.
        save_tested_package(describe(reference_output(describe(packaged_output))), out_path)
    return ExportResult(
        path=out_path,
        status="passed",
        seconds=time.perf_counter() - start,
        size_bytes=out_path.stat().st_size,
    )


@contextmanager
def export_folder(recipe: ExportRecipe) -> Iterator[Path]:
    """A temporary folder for the package files, and its maintainers accepted without network.

    bioimageio.spec would ask the GitHub API about each maintainer while the description is
    built and tested (see `github.py`); `hazematching check` verifies the accounts instead.
    """
    with (
        tempfile.TemporaryDirectory(prefix="hazematching-export-") as tmp,
        unverified_github_users(m.github_user for m in recipe.maintainers),
    ):
        yield Path(tmp)


def save_tested_package(descr: v0_5.ModelDescr, out_path: Path) -> None:
    """Zip the package to `out_path`, its `rdf.yaml` in the form deployed readers open, only if
    `bioimageio.core.test_model` passes on that zip."""
    from bioimageio.core import test_model
    from bioimageio.spec import save_bioimageio_package

    with atomic_path(out_path) as tmp_zip:
        save_bioimageio_package(descr, output_path=tmp_zip)
        rewrite_for_deployed_readers(tmp_zip)
        summary = test_model(tmp_zip)
        if summary.status != "passed":
            raise HazeMatchingError(
                f"bioimageio.core test_model status is {summary.status!r}: "
                f"{failure_summary(summary)}",
                out_path,
            )


def failure_summary(summary: object) -> str:
    """The names and errors of the failed checks of a bioimageio validation summary."""
    failed = []
    for detail in getattr(summary, "details", []):
        if detail.status == "failed":
            errors = "; ".join(str(e.msg) for e in getattr(detail, "errors", [])[:3])
            failed.append(f"{detail.name}: {errors}" if errors else detail.name)
    return " | ".join(failed) or "see `bioimageio test` for details"
