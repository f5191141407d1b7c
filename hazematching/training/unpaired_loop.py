"""Training without pairs (method "cyclegan"): the loop around `training/cyclegan.py`.

Like paired training, every random draw of step s comes from generators seeded with (seed, s),
the run writes config.json, last.pt, best.pt and history.json, and `--resume` continues exactly:
the checkpoint carries, besides the generator, its EMA and its optimizer, the blur kernel, both
discriminators, their optimizer and the history buffers (`Checkpoint.extra`).

Without pairs there is no fidelity to select a step by, and the cycle losses are smallest for
a useless trivial solution (G = identity, h = delta), so `best.pt` is the latest checkpoint. The
kernel is written as `kernel.tif` (sum 1) with every checkpoint; when the data folder holds the
simulator's `widefield_psf.tif`, the run also reports how close the kernel came to it
(`kernel.json`, `kernel.png`). That file is only read for this report, never for training.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data.normalization import DatasetNormalization, Normalization
from ..data.simulate import PSF_FILE
from ..data.tiff import read_single, write_tiff
from ..data.unpaired import DomainPatches, UnpairedImages, load_unpaired, split_unpaired
from ..fileio import output_folder, write_json
from ..model.checkpoint import BEST, LAST, Checkpoint, save_checkpoint
from ..model.network import build_velocity_net
from ..plots import kernel_figure
from .cyclegan import (
    HistoryBuffer,
    MultiScaleDiscriminator,
    cycle,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from .ema import ema_update
from .kernel import BlurKernel, centre_crop, gaussian_kernel, kernel_distance, read_psf

_TRAIN_STREAM = 0
_VAL_STREAM = 1
_SIDES = ("sharp", "hazy")  # the discriminator of confocal x and that of widefield y
KERNEL_FILE = "kernel.tif"
_BETAS = (0.5, 0.999)  # Adam betas of GAN training (Radford et al.; CycleGAN)


def initial_kernel(config: TrainConfig) -> np.ndarray:
    """The kernel training starts from: the --psf file, or a unit-sum Gaussian."""
    settings = config.cyclegan
    if settings.psf is not None:
        return read_psf(Path(settings.psf), settings.kernel_size)
    return gaussian_kernel(settings.kernel_size, settings.initial_sigma)


def _data_record(data_dir: Path, train: UnpairedImages, val: UnpairedImages) -> dict[str, object]:
    def names(images: list[Path]) -> list[str]:
        return sorted({p.name for p in images})

    return {
        "data_dir": str(data_dir),
        "unpaired": True,
        "train_files": {
            "widefield": names(train.widefield.sources),
            "confocal": names(train.confocal.sources),
        },
        "val_files": {
            "widefield": names(val.widefield.sources),
            "confocal": names(val.confocal.sources),
        },
        "val_paths": sorted({str(p.resolve()) for p in val.widefield.sources}),
        "train_planes": {"widefield": len(train.widefield), "confocal": len(train.confocal)},
        "val_planes": {"widefield": len(val.widefield), "confocal": len(val.confocal)},
    }


@dataclass
class _UnpairedData:
    """What the steps draw from: patches of each domain in network units, fixed validation
    patches, the normalisation and the record of the data."""

    hazy: DomainPatches
    sharp: DomainPatches
    val_hazy: torch.Tensor
    val_sharp: torch.Tensor
    normalization: Normalization
    record: dict[str, object]


def _prepare_data(
    data_dir: Path, config: TrainConfig, previous: Checkpoint | None
) -> _UnpairedData:
    """Load and split the two domains and fix the normalisation (a resumed run's, else the
    training images' statistics: the domains hold different scenes, so one fixed map each)."""
    data = load_unpaired(data_dir)
    train, val = split_unpaired(data, config.val_fraction, config.seed)
    normalization = (
        previous.normalization
        if previous is not None
        else DatasetNormalization.from_images(train.widefield.planes, train.confocal.planes)
    )
    intensities = normalization.intensity_map()
    p = config.patch_size
    val_rng = np.random.default_rng([config.seed, _VAL_STREAM])
    val_hazy = DomainPatches(val.widefield, intensities.normalize_input, p)
    val_sharp = DomainPatches(val.confocal, intensities.normalize_target, p)
    return _UnpairedData(
        hazy=DomainPatches(train.widefield, intensities.normalize_input, p),
        sharp=DomainPatches(train.confocal, intensities.normalize_target, p),
        val_hazy=torch.from_numpy(val_hazy.sample(val_rng, config.val_patches)),
        val_sharp=torch.from_numpy(val_sharp.sample(val_rng, config.val_patches)),
        normalization=normalization,
        record=_data_record(Path(data_dir), train, val),
    )


@dataclass
class _UnpairedState:
    """The generator with its EMA copy, the blur kernel, both discriminators, the two
    optimizers, the history buffers, and where the run stands."""

    net: nn.Module
    ema: nn.Module
    kernel: BlurKernel
    critics: dict[str, MultiScaleDiscriminator]
    optimizer: torch.optim.Optimizer
    critic_optimizer: torch.optim.Optimizer
    buffers: dict[str, HistoryBuffer]
    start: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        config: TrainConfig,
        start_kernel: np.ndarray,
        device: torch.device,
        previous: Checkpoint | None,
    ) -> _UnpairedState:
        """Fresh weights from the seed, or the state of the run `previous` resumes."""
        settings = config.cyclegan
        torch.manual_seed(config.seed)
        net = build_velocity_net(config.network, config.patch_size).to(device)
        kernel = BlurKernel(start_kernel, learn_shape=settings.psf is None).to(device)
        critics = {
            side: MultiScaleDiscriminator(settings.scales, settings.discriminator_width).to(device)
            for side in _SIDES
        }
        state = cls(
            net=net,
            ema=copy.deepcopy(net).eval(),
            kernel=kernel,
            critics=critics,
            optimizer=torch.optim.Adam(
                [*net.parameters(), *kernel.parameters()], lr=config.learning_rate, betas=_BETAS
            ),
            critic_optimizer=torch.optim.Adam(
                [q for critic in critics.values() for q in critic.parameters()],
                lr=config.learning_rate,
                betas=_BETAS,
            ),
            buffers={side: HistoryBuffer(settings.history) for side in _SIDES},
        )
        if previous is not None:
            state.net.load_state_dict(previous.model)
            state.ema.load_state_dict(previous.ema)
            state.optimizer.load_state_dict(previous.optimizer)
            state.kernel.load_state_dict(previous.extra["kernel"])
            for side in _SIDES:
                state.critics[side].load_state_dict(previous.extra["discriminators"][side])
                state.buffers[side] = HistoryBuffer(
                    settings.history, previous.extra["history"][side]
                )
            state.critic_optimizer.load_state_dict(previous.extra["discriminator_optimizer"])
            state.start, state.history = previous.step, list(previous.history)
        return state

    def checkpoint(self, config: TrainConfig, data: _UnpairedData, step: int) -> Checkpoint:
        """The checkpoint of this state at `step` (everything `--resume` needs)."""
        return Checkpoint(
            config=config,
            normalization=data.normalization,
            step=step,
            model=self.net.state_dict(),
            ema=self.ema.state_dict(),
            optimizer=self.optimizer.state_dict(),
            best_val_loss=None,
            history=self.history,
            data=data.record,
            extra={
                "kernel": self.kernel.state_dict(),
                "discriminators": {side: self.critics[side].state_dict() for side in _SIDES},
                "discriminator_optimizer": self.critic_optimizer.state_dict(),
                "history": {side: self.buffers[side].patches for side in _SIDES},
            },
        )


def _step(
    state: _UnpairedState,
    data: _UnpairedData,
    config: TrainConfig,
    step: int,
    device: torch.device,
) -> dict[str, float]:
    """One generator and kernel update, then one update of both discriminators, on the
    patches drawn for `step`; returns the step's losses."""
    settings = config.cyclegan
    rng = np.random.default_rng([config.seed, _TRAIN_STREAM, step])
    hazy = torch.from_numpy(data.hazy.sample(rng, config.batch_size)).to(device)
    sharp = torch.from_numpy(data.sharp.sample(rng, config.batch_size)).to(device)
    critics = state.critics
    for critic in critics.values():
        critic.requires_grad_(False)
    result = cycle(state.net, state.kernel, sharp, hazy)
    adversarial = lsgan_generator_loss(critics["sharp"](result.fake_sharp))
    adversarial = adversarial + lsgan_generator_loss(critics["hazy"](result.fake_hazy))
    cycle_loss = result.loss_sharp + result.loss_hazy
    loss = settings.cycle_weight * cycle_loss + adversarial
    if settings.psf is None:
        loss = loss + settings.kernel_l1 * state.kernel.l1()
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    ema_update(state.ema, state.net, config.ema_decay, step)

    for critic in critics.values():
        critic.requires_grad_(True)
    shown_sharp = state.buffers["sharp"].query(rng, result.fake_sharp).to(device)
    shown_hazy = state.buffers["hazy"].query(rng, result.fake_hazy).to(device)
    critic_loss = lsgan_discriminator_loss(
        critics["sharp"](sharp), critics["sharp"](shown_sharp)
    ) + lsgan_discriminator_loss(critics["hazy"](hazy), critics["hazy"](shown_hazy))
    state.critic_optimizer.zero_grad(set_to_none=True)
    critic_loss.backward()
    state.critic_optimizer.step()
    return {
        "train_loss": loss.item(),
        "cycle": cycle_loss.item(),
        "generator_adversarial": adversarial.item(),
        "discriminator": critic_loss.item(),
    }


def _validate_and_save(
    state: _UnpairedState,
    data: _UnpairedData,
    config: TrainConfig,
    run_dir: Path,
    done: int,
    losses: dict[str, float],
    device: torch.device,
) -> float:
    """The EMA generator's cycle losses on the validation patches, added to the history, and
    every file of the run written; returns the validation loss."""
    with torch.no_grad():
        checked = cycle(
            state.ema, state.kernel, data.val_sharp.to(device), data.val_hazy.to(device)
        )
    val_loss = float(checked.loss_sharp + checked.loss_hazy)
    state.history.append(
        {
            "step": done,
            "train_loss": losses["train_loss"],
            "val_loss": val_loss,
            "val_cycle_sharp": float(checked.loss_sharp),
            "val_cycle_hazy": float(checked.loss_hazy),
            "generator_adversarial": losses["generator_adversarial"],
            "discriminator": losses["discriminator"],
        }
    )
    checkpoint = state.checkpoint(config, data, done)
    save_checkpoint(run_dir / LAST, checkpoint)
    save_checkpoint(run_dir / BEST, checkpoint)
    write_tiff(run_dir / KERNEL_FILE, state.kernel.unit_sum(), "YX")
    write_json(run_dir / "history.json", state.history)
    return val_loss


def train_unpaired(
    data_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    previous: Checkpoint | None,
    device: torch.device,
    progress: bool,
) -> tuple[int, float, list[dict[str, float]]]:
    """Train G and h on the unpaired folder `data_dir`; returns (steps, last val loss, history)."""
    data = _prepare_data(data_dir, config, previous)
    start_kernel = initial_kernel(config)  # a bad --psf file is refused before any writing
    output_folder(run_dir)
    write_json(run_dir / "config.json", config.model_dump(mode="json"))
    state = _UnpairedState.create(config, start_kernel, device, previous)
    val_loss = float("nan")
    bar = tqdm(
        total=config.steps, initial=state.start, desc="train", unit="step", disable=not progress
    )
    state.net.train()
    for step in range(state.start, config.steps):
        losses = _step(state, data, config, step, device)
        bar.update(1)
        bar.set_postfix(
            cycle=f"{losses['cycle']:.4f}", gan=f"{losses['generator_adversarial']:.3f}"
        )
        done = step + 1
        if done % config.val_every == 0 or done == config.steps:
            val_loss = _validate_and_save(state, data, config, run_dir, done, losses, device)
    bar.close()
    report_kernel(run_dir, Path(data_dir), start_kernel, state.kernel.unit_sum())
    return config.steps, val_loss, state.history


def report_kernel(
    run_dir: Path, data_dir: Path, initial: np.ndarray, learned: np.ndarray
) -> dict[str, object] | None:
    """Distances of the initial and learned kernels to the data's true PSF, with a figure.

    Only when `data_dir` holds the simulator's `widefield_psf.tif`; returns the record or None.
    """
    truth_file = data_dir / PSF_FILE
    if not truth_file.is_file():
        return None
    truth = read_single(truth_file)[0]
    record: dict[str, object] = {
        "reference": str(truth_file),
        "kernel_size": int(learned.shape[0]),
        "measure": "relative l2 distance of unit-sum kernels, reference cropped to kernel size",
        "distance_initial": kernel_distance(initial, truth),
        "distance_learned": kernel_distance(learned, truth),
    }
    write_json(run_dir / "kernel.json", record)
    reference = centre_crop(truth, learned.shape[0])
    kernel_figure(run_dir / "kernel.png", initial, learned, reference / reference.sum(), record)
    return record
