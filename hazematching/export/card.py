"""The model card (README.md) of a package: what it does, how it was made, how far to trust it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..config import RandomizationConfig, RobustnessPlan, SamplingConfig
from ..data.normalization import DatasetNormalization, Normalization
from ..errors import HazeMatchingError
from ..evaluation.report import comparison_markdown, load_records
from ..evaluation.robustness import robustness_table
from ..inference.loader import model_file
from ..model.calibration import Calibration
from ..model.checkpoint import Checkpoint
from .recipe import PAPER_CITATION, PAPER_URL, ExportRecipe


def evaluation_markdown(
    report: Path | None, model_path: Path, calibration: Calibration | None
) -> str | None:
    """The comparison table of a `hazematching evaluate` report, naming this model's rows.

    None without a report. Refuses a report without an evaluation of `model_path`, or one made
    under a calibration other than the model's present one: the card would show numbers of
    another model.
    """
    if report is None:
        return None
    records = load_records(Path(report))
    ours = [r for r in records if model_file(r["model"]) == model_file(model_path)]
    if not ours:
        raise HazeMatchingError(f"holds no evaluation of {model_path}", report)
    for record in ours:
        measured = record["overall"].get("calibration", {}).get("std_scale")
        present = calibration.std_scale if calibration else None
        if (measured is None) != (present is None) or (
            measured is not None and not math.isclose(measured, present, rel_tol=1e-9)
        ):
            raise HazeMatchingError(
                f"evaluated {record['name']} under another calibration than the model's "
                "present one: evaluate again",
                report,
            )
    names = ", ".join(f"`{r['name']}`" for r in ours)
    return "\n".join(
        [
            f"Measured with `hazematching evaluate`; this package is {names} below.",
            "",
            *comparison_markdown(records),
        ]
    )


def robustness_markdown(table: Path | None, model_path: Path) -> str | None:
    """This model's rows of a `hazematching robustness` table; None without a table.

    Refuses a table that does not hold `model_path`: the card would show another model.
    """
    if table is None:
        return None
    table = Path(table)
    try:
        record = json.loads(table.read_text())
        plan = RobustnessPlan.model_validate(record["plan"])
        names = [n for n, p in record["models"].items() if model_file(p) == model_file(model_path)]
        rows = [r for r in record["rows"] if r["model"] in names]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise HazeMatchingError(f"unreadable robustness table ({error})", table) from error
    if not rows:
        raise HazeMatchingError(f"holds no robustness measurement of {model_path}", table)
    return "\n".join(
        [
            "Robustness, measured with `hazematching robustness` on held-out conditions that "
            "each move one factor outside the training ranges:",
            "",
            *robustness_table(plan, rows),
        ]
    )


def _span(low: float, high: float, digits: int) -> str:
    return f"{low:.{digits}f}" if low == high else f"{low:.{digits}f}-{high:.{digits}f}"


def ranges_text(checkpoint: Checkpoint) -> str | None:
    """The randomisation ranges of the simulated training data; None if it was not randomised."""
    simulation = checkpoint.data.get("simulation") or {}
    if not simulation.get("randomize"):
        return None
    r = RandomizationConfig.model_validate(simulation["randomize"])
    structures = ", ".join(
        f"{name} {_span(*interval, 2)}" for name, interval in r.structures.items()
    )
    return (
        "Domain-randomised pairs: each pair drew its own microscope and sample from these "
        f"ranges. PSF model: {', '.join(r.psf_models)}; NA {_span(*r.numerical_aperture, 2)}; "
        f"immersion index {_span(*r.immersion_index, 3)}; emission {_span(*r.emission_nm, 0)} nm "
        f"(excitation {_span(*r.stokes_shift_nm, 0)} nm shorter); pixel "
        f"{_span(*r.pixel_um, 3)} um; sample thickness {_span(*r.thickness_um, 1)} um; "
        f"out-of-focus brightness x{_span(*r.defocus_brightness, 2)}; widefield background "
        f"{_span(*r.background, 2)} of the signal peak; widefield photons "
        f"{_span(*r.widefield_photons, 0)} and confocal photons {_span(*r.confocal_photons, 0)} "
        f"(log-uniform); read noise {_span(*r.read_noise, 1)}; spherical aberration "
        f"{_span(*r.spherical_aberration, 2)} and astigmatism {_span(*r.astigmatism, 2)} waves "
        f"RMS; structures, each present with probability {r.structure_probability:g} (at "
        f"least one), at densities per 100 um^2 (tissue: brightness): {structures}. Outside "
        "these ranges the model is extrapolating."
    )


def _training_data(checkpoint: Checkpoint) -> str:
    data = checkpoint.data
    if data.get("unpaired"):
        train, val = data["train_planes"], data["val_planes"]
        return (
            f"Unpaired: {train['widefield']} widefield and {train['confocal']} confocal training "
            f"image planes ({val['widefield']} and {val['confocal']} for validation) of different "
            f"samples, from `{data.get('data_dir', '?')}` (widefield/ and confocal/ folders)."
        )
    return (
        f"{data.get('train_planes', '?')} training and {data.get('val_planes', '?')} validation "
        f"image planes from `{data.get('data_dir', '?')}` (channel 0 confocal target, channel 1 "
        "widefield input)."
    )


def _count(number: int | None, noun: str) -> str:
    """'1 sample', '8 samples'."""
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _method_text(checkpoint: Checkpoint) -> str:
    """One sentence on what the network learned (see `TrainConfig.method`)."""
    config = checkpoint.config
    return {
        "hazematching": "The network defines a guided conditional flow from Gaussian noise to a "
        "confocal-like image (HazeMatching).",
        "reflow": "The network defines a guided conditional flow from Gaussian noise to a "
        "confocal-like image (HazeMatching), distilled by reflow from a "
        f"{config.teacher_steps}-step HazeMatching teacher, trained at the {config.time_grid} "
        "Euler times it is sampled at, so that a few steps reach the teacher's posterior sample "
        "from the same noise.",
        "indi": "The network defines an InDI flow from the widefield image (plus Gaussian noise "
        f"of std {config.indi_noise} in normalised units) to a confocal-like image.",
        "unet": "The network is a U-Net trained with the mean squared error to predict the "
        "confocal image from the widefield image (a point predictor: `std` is zero).",
        "cyclegan": "The network is a U-Net trained without paired images, from unmatched "
        "widefield and confocal images, as a CycleGAN whose second generator is a learned "
        f"{config.cyclegan.kernel_size} x {config.cyclegan.kernel_size} blur kernel (a point "
        "predictor: `std` is zero).",
    }[config.method]


def opening_lines(recipe: ExportRecipe) -> list[str]:
    """The start of every card: title, summary and the heading of what the model does."""
    return [f"# {recipe.name}", "", recipe.description, "", "## What it does", ""]


def closing_lines(
    recipe: ExportRecipe,
    evaluation: str | None,
    limitations: str,
    citation: str,
    robustness: str | None = None,
) -> list[str]:
    """The end of every card: measured results (recipe text, evaluation, robustness),
    limitations, citation."""
    measured = [text for text in (recipe.card.metrics, evaluation, robustness) if text]
    return [
        "\n\n".join(measured)
        or "No held-out image metrics were recorded for this package. Measure them on your own "
        "paired data before relying on the output.",
        "",
        "## Limitations",
        "",
        limitations,
        "",
        "## Citation",
        "",
        f"{citation} {PAPER_URL}",
        "",
    ]


def model_card(
    recipe: ExportRecipe,
    checkpoint: Checkpoint,
    sampling: SamplingConfig,
    channel_names: list[str],
    parameters: int,
    evaluation: str | None = None,
    robustness: str | None = None,
) -> str:
    """Markdown text of the package README, with the `## Validation` section the zoo asks for.

    `evaluation` (see `evaluation_markdown`), `robustness` (see `robustness_markdown`) and the
    recipe's metrics text are the measured results shown under Validation.
    """
    config, norm = checkpoint.config, checkpoint.normalization
    history = checkpoint.history
    last_val = f"{history[-1]['val_loss']:.4f} at step {history[-1]['step']}" if history else "n/a"
    best = min(history, key=lambda entry: entry["val_loss"]) if history else None
    best_val = f"{best['val_loss']:.4f} at step {best['step']}" if best else "n/a"
    calibration = checkpoint.calibration
    lines = [
        *opening_lines(recipe),
        "Input: one single-channel widefield image (axes batch, channel, y, x; any size, padded "
        f"internally to a multiple of {config.network.size_multiple}). Output: one tensor whose "
        f"channels are {', '.join(f'`{c}`' for c in channel_names)}, in {_units(norm)}. "
        "The model maps intensities to its own units and back "
        "by itself (no pre- or postprocessing) and tiles and blends inside: give it the whole "
        f"image. deepImageJ runs an image whose sides are multiples of "
        f"{config.network.size_multiple} px as one tile; other sizes it cuts into a few "
        "overlapping tiles sampled separately, whose samples differ at the borders (crop to a "
        f"multiple of {config.network.size_multiple} px to avoid that).",
        "",
        f"{_method_text(checkpoint)} The package integrates it with "
        f"{_count(sampling.steps, 'Euler step')} for {_count(sampling.samples, 'sample')} "
        f"(seed {sampling.seed}); "
        + (
            "`mmse` is the mean of the MMSE head's estimates (a second output channel trained "
            "to give E[confocal | widefield] at t = 0, read from each sample's first network "
            "evaluation at no extra cost) and `std` the samples' standard deviation"
            if config.network.mmse_head
            else "`mmse` is their mean and `std` their standard deviation"
        )
        + (
            f", calibrated as {calibration.std_scale:.4g} x std + "
            f"{_std_offset(norm, calibration.std_offset)} ("
            f"fitted on {calibration.source or 'validation data'}: expected normalised "
            f"calibration error {calibration.error_before:.3f} before, "
            f"{calibration.error_after:.3f} after)"
            if calibration
            else " (not calibrated: run `hazematching calibrate` before exporting)"
        )
        + ". The noise is computed inside the model from an integer hash of (seed, sample, "
        "pixel), so the output is the same every time and on every device.",
        "",
        f"Intended use: {recipe.card.intended_use}",
        "",
        "## Training",
        "",
        f"Data: {recipe.card.training_data or _training_data(checkpoint)}",
        "",
        *([text, ""] if (text := ranges_text(checkpoint)) else []),
        "| setting | value |",
        "| --- | --- |",
        f"| method | {config.method} |",
        f"| steps | {config.steps} (exported checkpoint: step {checkpoint.step}) |",
        f"| patch size | {config.patch_size} |",
        f"| batch size | {config.batch_size} |",
        f"| learning rate | {config.learning_rate} |",
        f"| time grid T | {config.time_grid} |",
        f"| EMA decay | {config.ema_decay} |",
        f"| network | torchcfm UNetModel, {config.network.model_channels} channels, multipliers "
        f"{','.join(map(str, config.network.channel_mult))}, attention at 1/"
        f"{','.join(map(str, config.network.attention_downsample)) or '-'}, "
        f"{parameters:,} parameters"
        + (", with an MMSE head (second output channel)" if config.network.mmse_head else "")
        + " |",
        f"| seed | {config.seed} |",
        *_normalization_rows(norm),
        "",
        "## Validation",
        "",
        (
            f"Validation loss (the two l1 cycle losses on held-out unpaired patches): last "
            f"{last_val}. The package's"
            if config.method == "cyclegan"
            else f"Validation loss (flow-matching MSE on held-out patches, every "
            f"{config.val_every} steps): best {best_val} of the validations up to the exported "
            f"checkpoint (step {checkpoint.step} of {config.steps}). The package's"
        )
        + " test tensors were produced by `bioimageio.core` from the "
        "packaged weights and `bioimageio.core.test_model` passed on both weight formats at "
        "export.",
        "",
        *closing_lines(recipe, evaluation, recipe.card.limitations, PAPER_CITATION, robustness),
    ]
    return "\n".join(lines)


def _units(norm: Normalization) -> str:
    """What the output's intensities are measured in."""
    if isinstance(norm, DatasetNormalization):
        return "the intensity units of the confocal training targets"
    return "the input image's own intensity units"


def _std_offset(norm: Normalization, offset: float) -> str:
    """The calibration's std offset (fitted in network units) as the package applies it."""
    if isinstance(norm, DatasetNormalization):
        return f"{offset * norm.intensity_map().output_scale:.4g} target intensities"
    return (
        f"{offset:.4g} x the input's {norm.low_percentile:g}-{norm.high_percentile:g} "
        "percentile range"
    )


def _normalization_rows(norm: Normalization) -> list[str]:
    """Rows of the training table that state the normalisation."""
    if isinstance(norm, DatasetNormalization):
        rows = [
            f"| input normalisation | mean {norm.input_mean:.6g}, std {norm.input_std:.6g} |",
            f"| target normalisation | mean {norm.target_mean:.6g}, std {norm.target_std:.6g} |",
        ]
        if norm.input_range is not None:
            low, high = norm.input_intensities(*norm.input_range)
            rows.append(
                f"| training input intensities | {low:.4g} to {high:.4g} (lowest 0.1st, highest "
                "99.9th percentile); images far outside give unreliable results |"
            )
        return rows
    return [
        f"| normalisation | per image: its {norm.low_percentile:g} and "
        f"{norm.high_percentile:g} percentiles map to 0 and 1, results mapped back alike |"
    ]
