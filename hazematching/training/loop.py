"""Training the velocity network with guided conditional flow matching (Algorithm 1).

Every random draw of step s on rank r comes from generators seeded with (seed, s, r): patches,
augmentations, times and noise. A run is therefore reproducible, and a resumed run continues
exactly as if it had never stopped. Under torchrun each process trains on its own patches and
torch's DistributedDataParallel averages the gradients; rank 0 validates and writes checkpoints.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..config import NormalizationMode, TrainConfig
from ..data.dataset import PairedImages, PatchSampler, load_training_data
from ..data.normalization import DatasetNormalization, Normalization, PerImageNormalization
from ..data.simulate import simulation_record
from ..data.unpaired import is_unpaired_folder
from ..errors import HazeMatchingError
from ..fileio import check_output_folder, output_folder, write_json
from ..model.checkpoint import (
    BEST,
    LAST,
    Checkpoint,
    load_checkpoint,
    load_model_checkpoint,
    save_checkpoint,
)
from ..model.network import build_velocity_net, load_widening_output
from ..model.trained import trained_model_from
from ..runtime import ProcessGroup, resolve_device, start_process_group, stop_process_group
from .ema import ema_update
from .flow import GuidedFlowMatching, draw_times
from .reflow import PAIR_STREAMS, TeacherPairs, cached_pairs, draw_pairs
from .unpaired_loop import train_unpaired

_TRAIN_STREAM = 0
_VAL_STREAM = 1


@dataclass(frozen=True)
class TrainResult:
    """Where the run wrote its checkpoints, and how validation went."""

    best: Path
    last: Path
    step: int
    best_val_loss: float
    history: list[dict[str, float]]


class _Validator:
    """Fixed validation patches, noise and times: losses are comparable across steps."""

    def __init__(
        self,
        hazy: torch.Tensor,
        target: torch.Tensor,
        noise: torch.Tensor,
        config: TrainConfig,
        device: torch.device,
        truth: torch.Tensor | None = None,
    ):
        self.hazy, self.target, self.noise, self.truth = hazy, target, noise, truth
        index = torch.arange(len(hazy)) % config.times
        self.t = index.to(torch.float32) / config.times
        self.batch = config.batch_size
        self.device = device

    @classmethod
    def from_patches(
        cls, sampler: PatchSampler, config: TrainConfig, device: torch.device
    ) -> _Validator:
        """`val_patches` random patches of the validation images with fresh noise."""
        rng = np.random.default_rng([config.seed, _VAL_STREAM])
        hazy, target = sampler.sample(rng, config.val_patches)
        generator = torch.Generator().manual_seed(config.seed)
        noise = torch.randn(target.shape, generator=generator)
        return cls(torch.from_numpy(hazy), torch.from_numpy(target), noise, config, device)

    def loss(self, net: nn.Module, objective: GuidedFlowMatching) -> float:
        """Mean loss over all validation patches, in batches."""
        net.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(self.t), self.batch):
                part = slice(start, start + self.batch)
                value = objective.loss(
                    net,
                    self.hazy[part].to(self.device),
                    self.target[part].to(self.device),
                    self.noise[part].to(self.device),
                    self.t[part].to(self.device),
                    None if self.truth is None else self.truth[part].to(self.device),
                )
                total += float(value) * len(self.t[part])
        net.train()
        return total / len(self.t)


def _data_record(data_dir: Path, train: PairedImages, val: PairedImages) -> dict[str, object]:
    """What the run trained on; with the simulator's configuration when the data was simulated,
    so that a model card can state the ranges a randomised model has seen."""
    return {
        "data_dir": str(data_dir),
        "train_files": sorted({p.name for p in train.sources}),
        "val_files": sorted({p.name for p in val.sources}),
        "val_paths": sorted({str(p.resolve()) for p in val.sources}),
        "train_planes": len(train),
        "val_planes": len(val),
        **simulation_record(data_dir),
    }


def train(
    data_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train on the pairs in `data_dir`; writes config.json, best.pt, last.pt and history.json.

    With `resume`, training continues from run_dir/last.pt with its stored configuration (only
    `steps` and `device` are taken from `config`), optimizer and EMA state.
    """
    run_dir = check_output_folder(run_dir)
    previous: Checkpoint | None = None
    if resume:
        previous = load_checkpoint(run_dir / LAST)
        config = previous.config.model_copy(update={"steps": config.steps, "device": config.device})
        if not previous.optimizer:
            raise HazeMatchingError(
                "holds no optimizer state (a copy for prediction): cannot resume from it",
                run_dir / LAST,
            )
        if previous.step >= config.steps:
            raise HazeMatchingError(
                f"already trained {previous.step} steps; ask for more than that with --steps",
                run_dir / LAST,
            )
    elif (run_dir / LAST).exists():
        raise HazeMatchingError("holds a previous run; use --resume or a new folder", run_dir)

    teacher = None
    if config.method == "reflow":
        teacher = load_teacher(Path(str(config.teacher)))
        config = _network_of(teacher, config, config.network.mmse_head)
    init = None
    if config.init is not None and previous is None:
        init = load_init(Path(config.init), config)
        head = init.config.network.mmse_head or config.network.mmse_head
        config = _network_of(init, config, head)
    device = resolve_device(config.device)
    group = start_process_group(device)
    if group.world > 1 and device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
    try:
        if (teacher is not None or config.method == "cyclegan") and group.world > 1:
            raise HazeMatchingError(
                f"{config.method} trains in one process; run it without torchrun"
            )
        if config.method == "cyclegan":
            step, val_loss, history = train_unpaired(
                data_dir, run_dir, config, previous, device, progress
            )
            return TrainResult(run_dir / BEST, run_dir / LAST, step, val_loss, history)
        starts = _Starts(previous, teacher, init)
        return _train(data_dir, run_dir, config, starts, device, group, progress)
    finally:
        stop_process_group(group)


def _network_of(start: Checkpoint, config: TrainConfig, mmse_head: bool) -> TrainConfig:
    """`config` with the architecture and patch size of the model it starts from, with or
    without an MMSE head (a head is added to a model without one, see `load_widening_output`)."""
    network = start.config.network.model_copy(update={"mmse_head": mmse_head})
    return config.model_copy(update={"network": network, "patch_size": start.config.patch_size})


def load_init(path: Path, config: TrainConfig) -> Checkpoint:
    """The model a fine-tuning starts from (a checkpoint, run folder or package that ships its
    checkpoint): it must be of the method being trained, or a reflow student for a HazeMatching
    training (the same network and inputs; it is then trained and sampled at the new time grid)."""
    init = load_model_checkpoint(path)
    compatible = {config.method} | ({"reflow"} if config.method == "hazematching" else set())
    if init.config.method not in compatible:
        raise HazeMatchingError(
            f"is a {init.config.method} model: fine-tune it with --method {init.config.method}",
            path,
        )
    return init


@dataclass(frozen=True)
class _Starts:
    """What a training starts from besides fresh weights: the run it resumes, the teacher of a
    student, the model it fine-tunes (each None when absent)."""

    previous: Checkpoint | None = None
    teacher: Checkpoint | None = None
    init: Checkpoint | None = None

    def normalization(self, config: TrainConfig, pairs: PairedImages) -> Normalization:
        """A resumed run's or a teacher's normalisation; a fine-tuning keeps its model's mode
        (unless `config` names one), with the statistics of the new pairs for `dataset`;
        otherwise a fresh one of the configured mode."""
        if self.previous is not None:
            return self.previous.normalization
        if self.teacher is not None:
            return self.teacher.normalization
        if self.init is not None:
            mode = config.normalization or self.init.normalization.mode
            if isinstance(self.init.normalization, PerImageNormalization) and mode == "per-image":
                return self.init.normalization
            return fresh_normalization(mode, pairs)
        return fresh_normalization(config.normalization_mode, pairs)


def fresh_normalization(mode: NormalizationMode, pairs: PairedImages) -> Normalization:
    """A new normalisation of `mode`: the default percentiles, or the statistics of `pairs`."""
    if mode == "per-image":
        return PerImageNormalization()
    return DatasetNormalization.from_images(pairs.inputs, pairs.targets)


def load_teacher(path: Path) -> Checkpoint:
    """The HazeMatching checkpoint a reflow student learns from; refuses any other method."""
    teacher = load_checkpoint(path)
    if teacher.config.method != "hazematching":
        raise HazeMatchingError(
            f"a reflow teacher must be a HazeMatching model, not '{teacher.config.method}'", path
        )
    return teacher


def _teacher_pairs(
    run_dir: Path,
    config: TrainConfig,
    teacher: Checkpoint,
    samplers: dict[str, PatchSampler],
    device: torch.device,
    progress: bool,
) -> dict[str, TeacherPairs]:
    """The student's training and validation pairs, drawn once and cached in the run folder."""
    net = trained_model_from(teacher, Path(str(config.teacher))).velocity.to(device)
    counts = {"train": config.reflow_pairs, "val": config.val_patches}
    key = {
        "teacher": str(Path(str(config.teacher)).resolve()),
        "teacher_step": teacher.step,
        "teacher_steps": config.teacher_steps,
        "counts": counts,
        "seed": config.seed,
    }

    def drawer(name: str) -> Callable[[], TeacherPairs]:
        return lambda: draw_pairs(
            net,
            samplers[name],
            counts[name],
            config.teacher_steps,
            config.seed,
            PAIR_STREAMS[name],
            device,
            progress,
        )

    return cached_pairs(run_dir, key, {name: drawer(name) for name in counts})


@dataclass
class _TrainingData:
    """What the steps draw from: patch samplers, the normalisation, the reflow pairs of a
    student (None otherwise), the validator and the record of the data."""

    train: PatchSampler
    normalization: Normalization
    reflow: TeacherPairs | None
    validator: _Validator
    record: dict[str, object]


def _prepare_data(
    data_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    starts: _Starts,
    device: torch.device,
    group: ProcessGroup,
    progress: bool,
) -> _TrainingData:
    """Load the pairs, fix the normalisation (`_Starts.normalization`), open the run folder
    with the config, and draw a student's teacher pairs (cached in the run folder)."""
    if is_unpaired_folder(data_dir):
        raise HazeMatchingError(
            f"holds unpaired widefield/ and confocal/ folders: method '{config.method}' needs "
            "pairs; train with --method cyclegan (or synthesize pairs from such a run)",
            data_dir,
        )
    train_pairs, val_pairs = load_training_data(data_dir, config.val_fraction, config.seed)
    normalization = starts.normalization(config, train_pairs)
    teacher = starts.teacher
    train_sampler = PatchSampler(train_pairs, normalization, config.patch_size, config.augmentation)
    val_sampler = PatchSampler(val_pairs, normalization, config.patch_size)
    if group.is_main:
        output_folder(run_dir)
        write_json(run_dir / "config.json", config.model_dump(mode="json"))
    reflow: TeacherPairs | None = None
    if teacher is None:
        validator = _Validator.from_patches(val_sampler, config, device)
    else:
        samplers = {"train": train_sampler, "val": val_sampler}
        pairs = _teacher_pairs(run_dir, config, teacher, samplers, device, progress)
        reflow, val = pairs["train"], pairs["val"]
        validator = _Validator(val.hazy, val.sample, val.noise, config, device, val.target)
    record = _data_record(Path(data_dir), train_pairs, val_pairs)
    return _TrainingData(train_sampler, normalization, reflow, validator, record)


@dataclass
class _TrainState:
    """The network, its EMA copy and optimizer, and where the run stands."""

    net: nn.Module
    ema: nn.Module
    optimizer: torch.optim.Optimizer
    start: int = 0
    best_val: float = math.inf
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def create(cls, config: TrainConfig, device: torch.device, starts: _Starts) -> _TrainState:
        """Fresh weights (identical on every rank; a student starts as its teacher, a
        fine-tuning as its model's EMA weights), or the state of the run it resumes."""
        torch.manual_seed(config.seed)
        net = build_velocity_net(config.network, config.patch_size).to(device)
        previous = starts.previous
        start = starts.teacher or starts.init
        if start is not None:
            load_widening_output(net, start.ema)
        state = cls(
            net,
            copy.deepcopy(net).eval(),
            torch.optim.Adam(net.parameters(), lr=config.learning_rate),
        )
        if previous is not None:
            state.net.load_state_dict(previous.model)
            state.ema.load_state_dict(previous.ema)
            state.optimizer.load_state_dict(previous.optimizer)
            state.start, state.history = previous.step, list(previous.history)
            if previous.best_val_loss is not None:
                state.best_val = previous.best_val_loss
        return state

    def checkpoint(self, config: TrainConfig, data: _TrainingData, step: int) -> Checkpoint:
        """The checkpoint of this state at `step`."""
        return Checkpoint(
            config=config,
            normalization=data.normalization,
            step=step,
            model=self.net.state_dict(),
            ema=self.ema.state_dict(),
            optimizer=self.optimizer.state_dict(),
            best_val_loss=self.best_val,
            history=self.history,
            data=data.record,
        )


def _step(
    state: _TrainState,
    model: nn.Module,
    objective: GuidedFlowMatching,
    data: _TrainingData,
    config: TrainConfig,
    step: int,
    rank: int,
    device: torch.device,
) -> float:
    """One optimizer step on a batch drawn from the step's own random stream; the loss."""
    rng = np.random.default_rng([config.seed, _TRAIN_STREAM, step, rank])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    if data.reflow is None:
        hazy, target = (
            torch.from_numpy(a).to(device) for a in data.train.sample(rng, config.batch_size)
        )
        noise = torch.randn(target.shape, generator=generator).to(device)
        truth = None
    else:
        batch = data.reflow.batch(rng, config.batch_size)
        hazy, noise, target, truth = (a.to(device) for a in batch)
    t = draw_times(generator, config.batch_size, config.times).to(device)
    loss = objective.loss(model, hazy, target, noise, t, truth)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    ema_update(state.ema, state.net, config.ema_decay, step)
    return loss.item()


def _validate_and_save(
    state: _TrainState,
    objective: GuidedFlowMatching,
    data: _TrainingData,
    config: TrainConfig,
    run_dir: Path,
    done: int,
    train_loss: float,
) -> float:
    """Validate the EMA network after `done` steps, record it, keep the best and the last
    checkpoint and the history; the validation loss."""
    val_loss = data.validator.loss(state.ema, objective)
    state.history.append({"step": done, "train_loss": train_loss, "val_loss": val_loss})
    if val_loss < state.best_val:
        state.best_val = val_loss
        save_checkpoint(run_dir / BEST, state.checkpoint(config, data, done))
    save_checkpoint(run_dir / LAST, state.checkpoint(config, data, done))
    write_json(run_dir / "history.json", state.history)
    return val_loss


def _train(
    data_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    starts: _Starts,
    device: torch.device,
    group: ProcessGroup,
    progress: bool,
) -> TrainResult:
    data = _prepare_data(data_dir, run_dir, config, starts, device, group, progress)
    state = _TrainState.create(config, device, starts)
    model: nn.Module = DistributedDataParallel(state.net) if group.world > 1 else state.net
    objective = GuidedFlowMatching(config.start_input, config.start_noise)
    bar = tqdm(
        total=config.steps,
        initial=state.start,
        desc="train",
        unit="step",
        disable=not (progress and group.is_main),
    )
    state.net.train()
    for step in range(state.start, config.steps):
        loss = _step(state, model, objective, data, config, step, group.rank, device)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        done = step + 1
        if group.is_main and (done % config.val_every == 0 or done == config.steps):
            val_loss = _validate_and_save(state, objective, data, config, run_dir, done, loss)
            bar.set_postfix(loss=f"{loss:.4f}", val=f"{val_loss:.4f}")
    bar.close()
    return TrainResult(run_dir / BEST, run_dir / LAST, config.steps, state.best_val, state.history)
