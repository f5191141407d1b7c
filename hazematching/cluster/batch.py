"""`hazematching predict --workers N | --scheduler ADDRESS`: one Dask task per image (per block of
a large image).

Every worker process loads the model once (`cached_runner`, keyed by the model and its settings) and
writes its outputs itself, atomically, with the code of single-process `predict`, so the files
are the same. A finished output is recorded in `OUT/.complete/<name>.json` with the SHA-256 of
its TIFF, written last: a re-run skips an output only if its record matches the settings and
the file on disk, so a partial or foreign file is never taken for a result. A worker that dies
loses only its running task, which the scheduler gives to another worker; temporary files it
leaves behind are removed at the end of the run. An image that fails (unreadable, NaN, wrong
shape) is reported by name while the others finish.

Large images (OME-Zarr, TIFF planes above `BlockConfig.above` px) are not one task but many: their
blocks are spread over the workers (`inference/blockwise.py`) while this process writes the
result; they are recorded and skipped on a re-run the same way.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from ..config import BlockConfig, OutputFormat, SamplingConfig
from ..data.inputs import read_input
from ..data.metadata import ImageMetadata
from ..data.omezarr import is_ome_zarr
from ..errors import IntensityRangeWarning
from ..fileio import file_stamp, output_folder, write_json
from ..inference.blockwise import (
    block_count,
    block_runner,
    blocks_record,
    intensity_sample,
    looks_large,
    predict_large,
)
from ..inference.loader import open_model
from ..inference.predict import check_input_names, predict_image, predict_record
from ..inference.runner import (
    BlockSource,
    Runner,
    block_source,
    cached_runner,
    intensity_warning,
)

if TYPE_CHECKING:
    from distributed import Client

COMPLETE = ".complete"


@dataclass(frozen=True)
class BatchSettings:
    """What every task needs to reproduce the single-process result.

    `model_stamp` (`file_stamp` of the model file) makes a model retrained or replaced at the
    same path count as other settings.
    """

    model: Path
    model_stamp: str
    sampling: SamplingConfig | None
    channel: int | str | None
    device: str
    blocks: BlockConfig
    scene: int | str | None = None
    output_format: OutputFormat = OutputFormat.TIFF

    def key(self) -> str:
        """A digest of the settings: outputs made under other settings are not reused."""
        text = json.dumps(
            {
                "model": self.model_stamp,
                "sampling": self.sampling.model_dump(mode="json") if self.sampling else None,
                "channel": self.channel,
                "scene": self.scene,
                "format": str(self.output_format),
                "blocks": self.blocks.model_dump(mode="json"),
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class BatchResult:
    """Outputs written now, outputs found complete and skipped, and failures by input name."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    """SHA-256 of a file, or of every file of a folder (an OME-Zarr result) with its name."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _record(out_dir: Path, name: str) -> Path:
    return out_dir / COMPLETE / f"{name}.json"


def is_complete(out_dir: Path, name: str, key: str, source: Path) -> bool:
    """Whether the output of `name` was made from this very input file under these settings and
    is unchanged since."""
    try:
        record = json.loads(_record(out_dir, name).read_text())
        return (
            record["settings"] == key
            and record["input"] == file_stamp(source)
            and record["sha256"] == _sha256(out_dir / record["output"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def predict_one(settings: BatchSettings, source: str, name: str, out_dir: str) -> str:
    """One task, run on a worker: read, dehaze and write one image, then its record."""
    folder = Path(out_dir)
    image, metadata = read_input(Path(source), settings.channel, settings.scene)
    stamp = file_stamp(Path(source))
    key = settings.key()
    runner = cached_runner(settings.model, settings.sampling, settings.device)
    caution = intensity_warning(runner, image, source)
    written = predict_image(
        runner, image, name, folder, metadata=metadata, output_format=settings.output_format
    )
    _complete(folder, name, key, stamp, written, runner, caution, metadata)
    return str(written)


def _complete(
    out_dir: Path,
    name: str,
    key: str,
    stamp: str,
    written: Path,
    runner: Runner,
    caution: str | None,
    metadata: ImageMetadata,
) -> None:
    """Record an output as complete (written last, after the output itself), with the
    intensity guard's warning about its input (None: none) and the input's metadata."""
    record = {
        "settings": key,
        "input": stamp,
        "output": written.name,
        "sha256": _sha256(written),
        "sampling": runner.settings,
        "output_channels": runner.channel_names,
        "warning": caution,
        "input_metadata": metadata.record(),
    }
    write_json(_record(out_dir, name), record)


def _remove_temporaries(out_dir: Path) -> None:
    """Temporary files and folders of writes that never finished (`fileio.atomic_path` and
    `data.omezarr` name them)."""
    for folder in (out_dir, out_dir / COMPLETE):
        for path in folder.glob(".*.tmp*"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def predict_distributed(
    model_path: Path,
    inputs: list[Path],
    out_dir: Path,
    client: Client,
    sampling: SamplingConfig | None = None,
    *,
    channel: int | str | None = None,
    scene: int | str | None = None,
    output_format: OutputFormat = OutputFormat.TIFF,
    device: str = "auto",
    progress: bool = True,
    blocks: BlockConfig | None = None,
) -> BatchResult:
    """Dehaze `inputs` on the cluster of `client`, one task per image or per block of a large
    image; see the module doc."""
    from distributed import as_completed

    blocks = blocks or BlockConfig()
    names = check_input_names(inputs)
    source_model = open_model(model_path, "predict", sampling=sampling is not None)
    settings = BatchSettings(
        Path(model_path).resolve(),
        file_stamp(source_model.file),
        sampling,
        channel,
        device,
        blocks,
        scene,
        output_format,
    )
    key = settings.key()
    out_dir = output_folder(Path(out_dir))
    (out_dir / COMPLETE).mkdir(exist_ok=True)
    result = BatchResult()
    futures = {}
    # the checkpoint and sampling of the block path, resolved once; without one, large TIFFs
    # are sampled whole and OME-Zarr images fail by name
    block_model = block_source(model_path, sampling)
    large: list[tuple[Path, str]] = []
    done: list[str] = []
    for source, name in zip(inputs, names, strict=True):
        if is_complete(out_dir, name, key, Path(source)):
            result.skipped.append(out_dir / _output_name(out_dir, name))
            done.append(name)
        elif is_ome_zarr(Path(source)) or (
            block_model.refusal is None and looks_large(Path(source), blocks, scene)
        ):
            large.append((Path(source), name))
        else:
            future = client.submit(
                predict_one,
                settings,
                str(Path(source).resolve()),
                name,
                str(out_dir),
                pure=False,  # a unique key per run: runs never share tasks on a shared scheduler
            )
            futures[future] = name
    with tqdm(total=len(inputs), desc="predict", unit="image", disable=not progress) as bar:
        bar.update(len(result.skipped))
        for future in as_completed(list(futures)):
            name = futures[future]
            if future.status == "error":
                result.failed[name] = _one_line(future.exception())
            else:
                result.written.append(Path(future.result()))
                done.append(name)
            bar.update(1)
        for source, name in large:
            try:
                written = _predict_large(
                    client,
                    settings,
                    block_model.require(model_path),
                    key,
                    source,
                    name,
                    out_dir,
                    progress,
                )
            except Exception as error:  # reported by name, as for a failed task
                result.failed[name] = _one_line(error)
            else:
                result.written.append(written)
                done.append(name)
            bar.update(1)
    _remove_temporaries(out_dir)
    complete = sorted(p.name for p in (*result.written, *result.skipped))
    record = predict_record(model_path, None, device, channel, inputs, complete, scene)
    records = {name: json.loads(_record(out_dir, name).read_text()) for name in sorted(done)}
    if records:  # the sampling and channels, as the workers recorded them
        first = next(iter(records.values()))
        record.update(sampling=first["sampling"], output_channels=first["output_channels"])
    record["warnings"] = _worker_warnings(list(records.values()))
    record["input_metadata"] = [
        records[name].get("input_metadata") if name in records else None for name in names
    ]
    record["failed"] = result.failed
    if large and block_model.refusal is None:
        record["blocks"] = blocks_record(blocks, block_model, device)
    write_json(out_dir / "predict.json", record)
    return result


def _worker_warnings(records: list[dict]) -> list[str]:
    """The intensity guard's warnings the tasks recorded (their complete records), issued again
    in this process (a worker's warnings are not shown where the run was started)."""
    cautions = []
    for entry in records:
        caution = entry.get("warning")
        if caution:
            warnings.warn(caution, IntensityRangeWarning, stacklevel=2)
            cautions.append(caution)
    return cautions


def _output_name(out_dir: Path, name: str) -> str:
    """The output file (or folder) a complete record names."""
    return str(json.loads(_record(out_dir, name).read_text())["output"])


def _predict_large(
    client: Client,
    settings: BatchSettings,
    block_model: BlockSource,
    key: str,
    source: Path,
    name: str,
    out_dir: Path,
    progress: bool,
) -> Path:
    """One large image, its blocks spread over the cluster (sampled as `block_model`, the
    model's `block_source`, says), recorded as complete when written."""
    image, metadata = read_input(source, settings.channel, settings.scene)
    stamp = file_stamp(source)
    runner = block_runner(block_model, settings.device)
    caution = intensity_warning(runner, intensity_sample(image), source)
    with tqdm(
        total=block_count(image, settings.blocks),
        desc=source.name,
        unit="block",
        leave=False,
        disable=not progress,
    ) as bar:
        written = predict_large(
            client,
            block_model,
            image,
            source=source,
            name=name,
            out_dir=out_dir,
            config=settings.blocks,
            device=settings.device,
            on_block=bar.update,
            metadata=metadata,
            output_format=settings.output_format,
        )
    _complete(out_dir, name, key, stamp, written, runner, caution, metadata)
    return written
