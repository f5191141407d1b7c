"""The `hazematching` command: a thin typer layer over the library API.

Every command builds a validated configuration, calls one library function and reports errors
(bad files, bad options, bad checkpoints) as a single line with a non-zero exit code.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from .config import (
    BlockConfig,
    CycleGANConfig,
    IntensityAugmentation,
    NetworkConfig,
    OutputFormat,
    RandomizationConfig,
    SamplingConfig,
    SimulationConfig,
    TrainConfig,
    load_toml,
)
from .errors import (
    CalibrationMismatch,
    HazeMatchingError,
    IntensityRangeWarning,
    describe_validation_error,
)

# TorchScript is what BioImage.IO consumers load; torch's deprecation notice is no news to users.
warnings.filterwarnings("ignore", message=r".*torch\.jit.*is deprecated")

app = typer.Typer(
    help="Dehaze widefield fluorescence images with guided conditional flow matching.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=BaseModel)
N = TypeVar("N", int, float)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _one_line_warnings(default: Callable[..., None]) -> Callable[..., None]:
    """A warnings display that shows ours as `warning: <message>` and others as before."""

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, (CalibrationMismatch, IntensityRangeWarning)):
            typer.echo(f"warning: {message}", err=True)
        else:
            default(message, category, *args, **kwargs)

    return show


def _reports_errors(command: F) -> F:
    """Turn library errors into one-line messages and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", CalibrationMismatch)
                warnings.simplefilter("always", IntensityRangeWarning)
                warnings.showwarning = _one_line_warnings(warnings.showwarning)
                return command(*args, **kwargs)
        except HazeMatchingError as error:
            _fail(str(error))
        except ValidationError as error:
            _fail(f"invalid option ({describe_validation_error(error)})")
        except KeyboardInterrupt:
            _fail("interrupted")

    return wrapper  # type: ignore[return-value]


def _default(model: type[BaseModel], name: str) -> str:
    return f"[default: {model.model_fields[name].default}]"


_STEPS_DEFAULT = (
    "[default: the steps the model's std was calibrated at, else its training time grid]"
)


# Options several commands share, declared once; a command only names them.
DeviceOption = Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N [default: auto]")]
ProgressOption = Annotated[bool, typer.Option(help="show a progress bar")]
SamplesOption = Annotated[
    int | None,
    typer.Option(help=f"posterior samples per image {_default(SamplingConfig, 'samples')}"),
]
StepsOption = Annotated[int | None, typer.Option(help=f"Euler steps {_STEPS_DEFAULT}")]
NoiseSeedOption = Annotated[
    int | None, typer.Option(help=f"noise seed {_default(SamplingConfig, 'seed')}")
]


def _build(
    model: type[C], base: dict[str, Any], flags: dict[str, str] | None = None, **options: Any
) -> C:
    """Validate `base` updated with every option the user actually gave (not None).

    A validation error names the command-line flags: a field is `--field-name` unless `flags`
    maps it to another (e.g. `thickness_um` -> `--thickness`), whether it is the field that
    failed or a field a whole-object check names in its message.
    """
    given = {k: v for k, v in options.items() if v is not None}
    try:
        return model.model_validate({**base, **given})
    except ValidationError as error:
        names = {name: "--" + name.replace("_", "-") for name in options} | (flags or {})
        # field names with an underscore (or mapped explicitly) cannot be plain words
        named = sorted((n for n in names if "_" in n or n in (flags or {})), key=len, reverse=True)
        message = describe_validation_error(error)
        if named:
            pattern = r"\b(" + "|".join(map(re.escape, named)) + r")\b"
            message = re.sub(pattern, lambda match: names[match.group(1)], message)
        raise HazeMatchingError(f"invalid option ({message})") from error


def _sampling(base: SamplingConfig | None = None, **options: Any) -> SamplingConfig | None:
    """The sampling settings: `base` (None: the model's own) with the options given on top,
    or `base` itself when none was given."""
    if all(value is None for value in options.values()):
        return base
    return _build(SamplingConfig, base.model_dump() if base else {}, **options)


def _number_tuple(text: str | None, kind: type[N]) -> tuple[N, ...] | None:
    """'1,2,4' -> (1, 2, 4) as `kind` (int or float); None stays None."""
    if text is None:
        return None
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise HazeMatchingError(f"expected comma-separated numbers, got {text!r}") from error


@app.command()
@_reports_errors
def simulate(
    out_dir: Path = typer.Argument(
        ..., help="folder to create with train/, val/ and test/ (widefield/, confocal/ if unpaired)"
    ),
    pairs: int = typer.Option(
        None, help=f"number of image pairs {_default(SimulationConfig, 'pairs')}"
    ),
    size: int = typer.Option(
        None, help=f"image side in pixels {_default(SimulationConfig, 'size')}"
    ),
    seed: int = typer.Option(None, help=f"random seed {_default(SimulationConfig, 'seed')}"),
    split: str = typer.Option(
        None, help="fractions of pairs for train,val,test, e.g. 0.2,0.4,0.4 [default: 0.8,0.1,0.1]"
    ),
    thickness: float = typer.Option(
        None, help=f"sample thickness in um {_default(SimulationConfig, 'thickness_um')}"
    ),
    widefield_photons: float = typer.Option(
        None, help=f"widefield photon level {_default(SimulationConfig, 'widefield_photons')}"
    ),
    confocal_photons: float = typer.Option(
        None, help=f"confocal photon level {_default(SimulationConfig, 'confocal_photons')}"
    ),
    read_noise: float = typer.Option(
        None, help=f"camera read noise {_default(SimulationConfig, 'read_noise')}"
    ),
    defocus_brightness: float = typer.Option(
        None,
        help=f"brightness of out-of-focus structures "
        f"{_default(SimulationConfig, 'defocus_brightness')}",
    ),
    unpaired: bool = typer.Option(
        False,
        help="write unmatched widefield/ and confocal/ folders (each image of its own sample) "
        "for `train --method cyclegan`, PAIRS images per side",
    ),
    randomize: bool = typer.Option(
        False,
        help="domain randomisation: every pair draws its own optics, noise and structures from "
        "the default ranges (those of the bundled model; see RandomizationConfig)",
    ),
    ranges: Path = typer.Option(
        None,
        help="TOML file of randomisation ranges (fields of RandomizationConfig; unnamed ones keep "
        "their defaults); implies --randomize",
    ),
    progress: ProgressOption = True,
) -> None:
    """Simulate paired widefield (hazy) / confocal (clean) images as 2-channel TIFFs."""
    from .data.simulate import simulate as run

    randomization = (
        load_toml(ranges, RandomizationConfig, "randomisation ranges")
        if ranges is not None
        else RandomizationConfig()
        if randomize
        else None
    )
    config = _build(
        SimulationConfig,
        {},
        {"thickness_um": "--thickness", "randomize": "--randomize/--ranges"},
        pairs=pairs,
        size=size,
        seed=seed,
        split=_number_tuple(split, float),
        thickness_um=thickness,
        widefield_photons=widefield_photons,
        confocal_photons=confocal_photons,
        read_noise=read_noise,
        defocus_brightness=defocus_brightness,
        unpaired=unpaired or None,
        randomize=randomization,
    )
    manifest = run(out_dir, config, progress=progress)
    what = "unpaired images per side" if config.unpaired else "pairs"
    typer.echo(f"wrote {config.pairs} {what} and {manifest}")


@app.command()
@_reports_errors
def train(
    data_dir: Path = typer.Argument(
        ..., help="folder of pairs, or of unpaired widefield/ and confocal/ for cyclegan (README)"
    ),
    out: Path = typer.Option(..., "--out", help="run folder for checkpoints and history"),
    steps: int = typer.Option(None, help=f"total optimizer steps {_default(TrainConfig, 'steps')}"),
    patch_size: int = typer.Option(None, help=f"patch side {_default(TrainConfig, 'patch_size')}"),
    batch_size: int = typer.Option(None, help=f"batch size {_default(TrainConfig, 'batch_size')}"),
    lr: float = typer.Option(None, help=f"learning rate {_default(TrainConfig, 'learning_rate')}"),
    method: str = typer.Option(
        None,
        help="hazematching (the guided flow), reflow (a few-step student of a hazematching "
        "--teacher), the baselines indi and unet (MSE point predictor), or cyclegan (a point "
        "predictor from UNPAIRED widefield/ and confocal/ folders) "
        f"{_default(TrainConfig, 'method')}",
    ),
    kernel_size: int = typer.Option(
        None,
        help=f"cyclegan: side of the learned blur kernel (odd) "
        f"{_default(CycleGANConfig, 'kernel_size')}",
    ),
    psf: Path = typer.Option(
        None, help="cyclegan: a widefield PSF TIFF to keep fixed (non-blind) [default: learned]"
    ),
    kernel_l1: float = typer.Option(
        None, help=f"cyclegan: l1 penalty on the kernel {_default(CycleGANConfig, 'kernel_l1')}"
    ),
    teacher: Path = typer.Option(
        None, help="reflow: the HazeMatching checkpoint or run folder to distil"
    ),
    teacher_steps: int = typer.Option(
        None, help=f"reflow: teacher's Euler steps {_default(TrainConfig, 'teacher_steps')}"
    ),
    reflow_pairs: int = typer.Option(
        None, help=f"reflow: teacher samples to train on {_default(TrainConfig, 'reflow_pairs')}"
    ),
    indi_noise: float = typer.Option(
        None, help=f"InDI start noise (z-scores) {_default(TrainConfig, 'indi_noise')}"
    ),
    time_grid: int = typer.Option(
        None,
        help="size T of the training time grid, the Euler steps the model is sampled with "
        f"{_default(TrainConfig, 'time_grid')}",
    ),
    width: int = typer.Option(
        None, help=f"network base channels {_default(NetworkConfig, 'model_channels')}"
    ),
    channel_mult: str = typer.Option(
        None, help="channel multipliers per level, e.g. 1,1,2,3,4 [default: 1,1,2,3,4]"
    ),
    attention: str = typer.Option(
        None, help="downsampling factors with attention, e.g. 16 ('' for none) [default: 16]"
    ),
    mmse_head: bool = typer.Option(
        None,
        "--mmse-head/--no-mmse-head",
        help="hazematching/reflow: a second output channel trained to give the MMSE estimate in "
        "the first network evaluation of each sample [default: no; a fine-tuning keeps its "
        "model's]",
    ),
    ema_decay: float = typer.Option(None, help=f"EMA decay {_default(TrainConfig, 'ema_decay')}"),
    val_every: int = typer.Option(
        None, help=f"steps between validations {_default(TrainConfig, 'val_every')}"
    ),
    normalization: str = typer.Option(
        None,
        help="per-image (each image scaled by its own 1st/99.8th percentiles: any camera, gain "
        "or bit depth) or dataset (the training images' fixed statistics: one microscope's "
        "units) [default: per-image; dataset for cyclegan; a fine-tuning keeps its model's]",
    ),
    augment_intensities: bool = typer.Option(
        False,
        help="train on patches recorded as random 8/12/16-bit cameras with gains, offsets and "
        "a few saturated pixels (IntensityAugmentation's defaults)",
    ),
    init: Path = typer.Option(
        None,
        help="fine-tune: start from this checkpoint, run folder or package that ships its "
        "checkpoint (e.g. the bundled model), same network",
    ),
    seed: int = typer.Option(None, help=f"random seed {_default(TrainConfig, 'seed')}"),
    device: DeviceOption = None,
    config: Path = typer.Option(
        None, help="a config.json of an earlier run to start from (options override it)"
    ),
    resume: bool = typer.Option(False, help="continue the run in --out from its last.pt"),
    progress: ProgressOption = True,
) -> None:
    """Train on paired images (HazeMatching or a baseline), or on unpaired ones (cyclegan).

    Writes best.pt and last.pt to --out.
    """
    from .training.loop import train as run

    base: dict[str, Any] = {}
    if config is not None:
        try:
            base = json.loads(config.read_text())
        except (OSError, ValueError) as error:
            raise HazeMatchingError(f"cannot read config ({error})", config) from error
    network = _build(
        NetworkConfig,
        base.get("network", {}),
        model_channels=width,
        channel_mult=_number_tuple(channel_mult, int),
        attention_downsample=_number_tuple(attention, int),
        mmse_head=mmse_head,
    )
    cyclegan = _build(
        CycleGANConfig,
        base.get("cyclegan", {}),
        kernel_size=kernel_size,
        psf=None if psf is None else str(psf.resolve()),
        kernel_l1=kernel_l1,
    )
    train_config = _build(
        TrainConfig,
        {**base, "network": network.model_dump(), "cyclegan": cyclegan.model_dump()},
        steps=steps,
        patch_size=patch_size,
        batch_size=batch_size,
        learning_rate=lr,
        method=method,
        indi_noise=indi_noise,
        teacher=None if teacher is None else str(teacher),
        teacher_steps=teacher_steps,
        reflow_pairs=reflow_pairs,
        time_grid=time_grid,
        ema_decay=ema_decay,
        val_every=val_every,
        normalization=normalization,
        augmentation=IntensityAugmentation().model_dump() if augment_intensities else None,
        init=None if init is None else str(init),
        seed=seed,
        device=device,
    )
    result = run(data_dir, out, train_config, resume=resume, progress=progress)
    which = "last" if train_config.method == "cyclegan" else "best"
    typer.echo(
        f"trained {result.step} steps; {which} validation loss {result.best_val_loss:.5f}; "
        f"checkpoints in {out}"
    )


@app.command()
@_reports_errors
def synthesize(
    model: Path = typer.Argument(..., help="checkpoint or run folder of a cyclegan run"),
    data_dir: Path = typer.Argument(..., help="the unpaired folder (widefield/ and confocal/)"),
    out: Path = typer.Option(..., "--out", help="folder for the synthetic pairs"),
    copies: int = typer.Option(1, help="synthetic widefield images (noise draws) per confocal one"),
    seed: int = typer.Option(0, help="seed of the noise"),
    progress: ProgressOption = True,
) -> None:
    """Make training pairs without pairs: blur the confocal images with a cyclegan run's learned
    kernel and add noise fitted to the widefield images; `train` HazeMatching on --out."""
    from .training.synthetic_pairs import synthesize_pairs

    manifest = synthesize_pairs(model, data_dir, out, copies=copies, seed=seed, progress=progress)
    typer.echo(f"wrote synthetic pairs and {manifest}")


@app.command()
@_reports_errors
def predict(
    paths: list[Path] = typer.Argument(
        ...,
        metavar="[MODEL] IMAGES...",
        help="MODEL: checkpoint (.pt), run folder or model package (.zip or folder); without it "
        "the bundled model model_zoo/hazematching-simulated. IMAGES: hazy TIFFs (2D or stacks), "
        "microscope files (.czi, .nd2, .lif, .ome.tif; pip install 'hazematching[formats]') or "
        "OME-Zarr images (sampled block by block)",
    ),
    out: Path = typer.Option(..., "--out", help="folder for the outputs"),
    samples: SamplesOption = None,
    steps: StepsOption = None,
    seed: NoiseSeedOption = None,
    batch_size: int = typer.Option(
        None, help=f"samples per network pass {_default(SamplingConfig, 'batch_size')}"
    ),
    keep_samples: bool = typer.Option(None, help="also write every sample as a channel"),
    tile: int = typer.Option(
        None,
        help="tile stride; the network sees tile + overlap px (0: whole image) "
        "[default: training patch size]",
    ),
    overlap: int = typer.Option(
        None, help="overlap of neighbouring tiles [default: tile / 8, 16 to tile / 4 px]"
    ),
    channel: str = typer.Option(
        None,
        help="channel to use from multi-channel inputs: an index (0 = first; 1 = widefield of a "
        "paired file) or a name stored in the file (e.g. DAPI)",
    ),
    scene: str = typer.Option(
        None, help="scene (position) of multi-scene microscope files: an index or its name"
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TIFF.value,
        "--format",
        help="results as ImageJ TIFFs (.tif) or OME-TIFFs (.ome.tif), with the input's pixel "
        "size; OME-Zarr inputs always give OME-Zarr",
    ),
    device: DeviceOption = None,
    workers: int = typer.Option(
        None,
        help="run on a local Dask cluster of this many worker processes, one image per task; "
        "a re-run skips complete outputs",
    ),
    scheduler: str = typer.Option(
        None,
        help="run on the existing Dask cluster at this address (e.g. tcp://host:8786, started "
        "by dask-jobqueue on SLURM); a re-run skips complete outputs",
    ),
    block: int = typer.Option(
        None, help=f"large images: side of the blocks, px {_default(BlockConfig, 'block')}"
    ),
    halo: int = typer.Option(
        None,
        help="large images: context around each block, px; neighbours are blended over twice "
        f"this {_default(BlockConfig, 'halo')}",
    ),
    block_above: int = typer.Option(
        None,
        help="TIFF planes with more pixels than this are sampled block by block "
        f"{_default(BlockConfig, 'above')}",
    ),
    progress: ProgressOption = True,
) -> None:
    """Dehaze images: the MMSE and per-pixel std (optionally samples) as TIFFs or OME-Zarr, and
    PNG previews."""
    from .data.inputs import selector
    from .inference.predict import predict as run
    from .inference.predict import split_model_argument

    model, inputs = split_model_argument(paths)
    chosen = {
        "channel": selector(channel),
        "scene": selector(scene),
        "output_format": output_format,
    }

    sampling = _sampling(
        samples=samples,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        keep_samples=keep_samples,
        tile=tile,
        overlap=overlap,
    )
    blocks = _build(BlockConfig, {}, block=block, halo=halo, above=block_above)
    if workers is None and scheduler is None:
        written = run(
            model,
            inputs,
            out,
            sampling,
            **chosen,
            device=device or "auto",
            progress=progress,
            blocks=blocks,
        )
        typer.echo(f"wrote {len(written)} file(s) to {out}")
        return
    from .cluster.batch import predict_distributed
    from .cluster.connect import dask_client

    if workers is not None and scheduler is not None:
        raise HazeMatchingError("give --workers or --scheduler, not both")
    with dask_client(workers, scheduler) as client:
        result = predict_distributed(
            model,
            inputs,
            out,
            client,
            sampling,
            **chosen,
            device=device or "auto",
            progress=progress,
            blocks=blocks,
        )
    for name, message in result.failed.items():
        typer.echo(f"failed: {name}: {message}", err=True)
    typer.echo(
        f"wrote {len(result.written)} file(s) to {out}, skipped {len(result.skipped)} complete, "
        f"{len(result.failed)} failed"
    )
    if result.failed:
        raise typer.Exit(1)


@app.command()
@_reports_errors
def calibrate(
    model: Path = typer.Argument(..., help="checkpoint (.pt) or run folder"),
    data_dir: Path = typer.Argument(..., help="paired data; its val/ split is used if present"),
    out: Path = typer.Option(None, "--out", help="report folder [default: RUN/calibration]"),
    samples: SamplesOption = None,
    steps: StepsOption = None,
    seed: NoiseSeedOption = None,
    bins: int = typer.Option(20, help="bins of predicted std (equal pixel counts)"),
    device: DeviceOption = None,
    progress: ProgressOption = True,
) -> None:
    """Fit std = scale * std + offset on validation pairs and store it in the checkpoint."""
    from .uncertainty.calibrate import calibrate as run

    sampling = _sampling(SamplingConfig(), samples=samples, steps=steps, seed=seed)
    result = run(
        model, data_dir, out, sampling, bins=bins, device=device or "auto", progress=progress
    )
    c = result.calibration
    typer.echo(
        f"std' = {c.std_scale:.4g} x std + {c.std_offset:.4g} (z-scores); calibration error "
        f"{c.error_before:.3f} -> {c.error_after:.3f}; stored in {result.checkpoint}; "
        f"plots in {result.report}"
    )


@app.command()
@_reports_errors
def evaluate(
    model: Path = typer.Argument(
        ...,
        help="checkpoint (.pt) or run folder of any method, package (.zip or folder), or "
        "Richardson-Lucy model (richardson_lucy.pt)",
    ),
    data_dir: Path = typer.Argument(..., help="paired data; its test/ split is used if present"),
    out: Path = typer.Option(..., "--out", help="report folder (methods accumulate in it)"),
    name: str = typer.Option(None, help="method name in the report [default: from the model]"),
    samples: SamplesOption = None,
    steps: StepsOption = None,
    seed: NoiseSeedOption = None,
    alexnet_weights: Path = typer.Option(None, help="torchvision AlexNet weights (LPIPS)"),
    lpips_weights: Path = typer.Option(None, help="LPIPS v0.1 AlexNet linear layers (LPIPS)"),
    inception_weights: Path = typer.Option(None, help="torchvision Inception-v3 weights (FID)"),
    bins: int = typer.Option(20, help="bins of predicted std for the calibration check"),
    figures: int = typer.Option(None, help="per-image figures for the first N images [all]"),
    device: DeviceOption = None,
    progress: ProgressOption = True,
) -> None:
    """Measure distortion, realism and calibration on held-out pairs; add them to a report."""
    from .evaluation.compute import PerceptualWeights
    from .evaluation.compute import evaluate as run

    sampling = _sampling(samples=samples, steps=steps, seed=seed)
    weights = PerceptualWeights(alexnet_weights, lpips_weights, inception_weights)
    for line in weights.skipped():
        typer.echo(line, err=True)
    result = run(
        model,
        data_dir,
        out,
        sampling,
        name=name,
        weights=weights,
        bins=bins,
        figures=figures,
        device=device or "auto",
        progress=progress,
    )
    mmse = result.overall["mmse"]
    typer.echo(
        f"{result.name}: MMSE range-invariant PSNR {mmse['ri_psnr']:.2f} dB (hazy input "
        f"{result.overall['input']['ri_psnr']:.2f} dB); report {result.summary}"
    )


def _external_data(items: list[str]) -> dict[str, Path]:
    """'NAME=FOLDER' options -> {NAME: FOLDER}."""
    found = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise HazeMatchingError(f"--data takes NAME=FOLDER, got {item!r}")
        found[name] = Path(folder)
    return found


@app.command()
@_reports_errors
def robustness(
    models: list[Path] = typer.Argument(
        ..., help="models to measure (anything `evaluate` takes), each on every condition"
    ),
    conditions: Path = typer.Option(
        ..., help="TOML plan of held-out conditions, e.g. packaging/robustness.toml"
    ),
    out: Path = typer.Option(..., "--out", help="folder for test sets, reports and the table"),
    names: str = typer.Option(
        None, help="comma-separated model names [default: each model's file or folder name]"
    ),
    data: list[str] = typer.Option(
        None,
        help="NAME=FOLDER: add a held-out condition of paired images not simulated here (e.g. "
        "from another simulator or microscope); repeatable",
    ),
    samples: SamplesOption = None,
    steps: StepsOption = None,
    seed: NoiseSeedOption = None,
    device: DeviceOption = None,
    progress: ProgressOption = True,
) -> None:
    """Measure models on held-out conditions outside their training ranges; write a table."""
    from .evaluation.robustness import ModelEntry, load_plan
    from .evaluation.robustness import robustness as run

    plan = load_plan(conditions, _external_data(data or []))
    sampling = _sampling(samples=samples, steps=steps, seed=seed)
    given = [n.strip() for n in names.split(",")] if names else []
    if given and len(given) != len(models):
        raise HazeMatchingError(f"--names gives {len(given)} names for {len(models)} models")
    entries = [
        ModelEntry(given[i] if given else (path.stem if path.is_file() else path.name), path)
        for i, path in enumerate(models)
    ]
    table = run(entries, plan, out, sampling, device=device or "auto", progress=progress)
    typer.echo(f"wrote {table} and {table.with_suffix('.md')}")


@app.command("richardson-lucy")
@_reports_errors
def richardson_lucy(
    data_dir: Path = typer.Argument(..., help="paired data; its val/ split picks the iterations"),
    out: Path = typer.Option(..., "--out", help="folder for richardson_lucy.pt and .json"),
    psf: Path = typer.Option(
        None, help="2D PSF TIFF, centred [default: DATA_DIR/widefield_psf.tif of the simulator]"
    ),
    max_iterations: int = typer.Option(100, help="iteration counts tried: 1 .. this"),
    progress: ProgressOption = True,
) -> None:
    """Richardson-Lucy baseline: pick the iteration count on validation pairs, save the model."""
    from .data.simulate import PSF_FILE
    from .training.richardson_lucy import fit_richardson_lucy

    model = fit_richardson_lucy(
        psf or Path(data_dir) / PSF_FILE,
        data_dir,
        out,
        max_iterations=max_iterations,
        progress=progress,
    )
    typer.echo(
        f"{model.iterations} iterations (validation range-invariant PSNR "
        f"{max(model.curve):.2f} dB); model in {out}"
    )


@app.command()
@_reports_errors
def export(
    checkpoint: Path = typer.Argument(
        ..., help="checkpoint (.pt), run folder, or Richardson-Lucy model (richardson_lucy.pt)"
    ),
    out: Path = typer.Option(..., "--out", help="package to write (.zip)"),
    recipe: Path = typer.Option(None, help="export recipe (TOML), e.g. packaging/NAME.toml"),
    samples: int = typer.Option(
        None,
        help="posterior samples baked into the package [default: the recipe's, else "
        f"{SamplingConfig.model_fields['samples'].default}]",
    ),
    steps: int = typer.Option(
        None,
        help="Euler steps baked into the package [default: the recipe's, else "
        "the steps the std was calibrated at, else the training time grid]",
    ),
    seed: int = typer.Option(
        None,
        help="noise seed baked into the package [default: the recipe's, else "
        f"{SamplingConfig.model_fields['seed'].default}]",
    ),
    keep_samples: bool = typer.Option(None, help="output every sample as a channel too"),
    test_image: Path = typer.Option(
        None,
        help="hazy TIFF for test tensors and cover [default: the validation image with most "
        "structure]",
    ),
    test_size: int = typer.Option(None, help="side of the test tensor [default: patch size]"),
    evaluation: Path = typer.Option(
        None, help="report folder of `hazematching evaluate` with this model, for the model card"
    ),
    robustness: Path = typer.Option(
        None, help="robustness.json of `hazematching robustness` with this model, for the card"
    ),
    maintainer: list[str] = typer.Option(
        None,
        help="GitHub user who maintains the package (repeatable; the zoo requires one), "
        "added to the recipe's",
    ),
) -> None:
    """Export a checkpoint as a BioImage.IO model package and test it with bioimageio.core."""
    from .export.model import export_model
    from .export.recipe import ExportRecipe, default_recipe, load_recipe

    base = load_recipe(recipe) if recipe is not None else default_recipe()
    sampling = _sampling(
        base.sampling, samples=samples, steps=steps, seed=seed, keep_samples=keep_samples
    )
    settings = _build(
        ExportRecipe,
        {**base.model_dump(), "sampling": sampling},
        test_image=test_image,
        test_size=test_size,
        evaluation=evaluation,
        robustness=robustness,
        maintainers=[*base.model_dump()["maintainers"], *({"github_user": m} for m in maintainer)]
        if maintainer
        else None,
    )
    result = export_model(checkpoint, out, settings)
    typer.echo(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB) in {result.seconds:.0f} s; "
        f"bioimageio.core test_model: {result.status}"
    )


@app.command()
@_reports_errors
def check(
    package: Path = typer.Argument(..., help="model package (.zip or unpacked folder)"),
) -> None:
    """Check a package against bioimageio.core, consumer-tool and zoo rules; exit 1 if any fails."""
    from .export.check import check_package

    results = check_package(package)
    width = max(len(r.rule) for r in results)
    for result in results:
        mark = "pass" if result.passed else "FAIL"
        typer.echo(f"{mark}  {result.rule:<{width}}  {result.detail}")
    failed = [r.rule for r in results if not r.passed]
    if failed:
        _fail(f"{package}: {len(failed)} rule(s) failed: {', '.join(failed)}")
    typer.echo(f"{package}: all {len(results)} rules passed")


def main() -> None:
    """Entry point for `python -m hazematching`."""
    app(prog_name="hazematching")


if __name__ == "__main__":
    sys.exit(main())
