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
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data.normalization import DatasetNormalization
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


def train_unpaired(
    data_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    previous: Checkpoint | None,
    device: torch.device,
    progress: bool,
) -> tuple[int, float, list[dict[str, float]]]:
    """Train G and h on the unpaired folder `data_dir`; returns (steps, last val loss, history)."""
    data = load_unpaired(data_dir)
    train, val = split_unpaired(data, config.val_fraction, config.seed)
    normalization = (
        previous.normalization
        if previous is not None
        else DatasetNormalization.from_images(train.widefield.planes, train.confocal.planes)
    )
    # the two domains hold different scenes: one fixed map for each (the dataset mode)
    intensities = normalization.intensity_map()
    p = config.patch_size
    hazy_patches = DomainPatches(train.widefield, intensities.normalize_input, p)
    sharp_patches = DomainPatches(train.confocal, intensities.normalize_target, p)
    val_rng = np.random.default_rng([config.seed, _VAL_STREAM])
    val_hazy = torch.from_numpy(
        DomainPatches(val.widefield, intensities.normalize_input, p).sample(
            val_rng, config.val_patches
        )
    )
    val_sharp = torch.from_numpy(
        DomainPatches(val.confocal, intensities.normalize_target, p).sample(
            val_rng, config.val_patches
        )
    )
    start_kernel = initial_kernel(config)  # a bad --psf file is refused before any writing
    output_folder(run_dir)
    write_json(run_dir / "config.json", config.model_dump(mode="json"))

    settings = config.cyclegan
    torch.manual_seed(config.seed)
    net = build_velocity_net(config.network, p).to(device)
    kernel = BlurKernel(start_kernel, learn_shape=settings.psf is None).to(device)
    critics = {
        side: MultiScaleDiscriminator(settings.scales, settings.discriminator_width).to(device)
        for side in _SIDES
    }
    ema = copy.deepcopy(net).eval()
    optimizer = torch.optim.Adam(
        [*net.parameters(), *kernel.parameters()], lr=config.learning_rate, betas=_BETAS
    )
    critic_optimizer = torch.optim.Adam(
        [q for critic in critics.values() for q in critic.parameters()],
        lr=config.learning_rate,
        betas=_BETAS,
    )
    buffers = {side: HistoryBuffer(settings.history) for side in _SIDES}
    start, history, val_loss = 0, [], float("nan")
    if previous is not None:
        net.load_state_dict(previous.model)
        ema.load_state_dict(previous.ema)
        optimizer.load_state_dict(previous.optimizer)
        kernel.load_state_dict(previous.extra["kernel"])
        for side in _SIDES:
            critics[side].load_state_dict(previous.extra["discriminators"][side])
            buffers[side] = HistoryBuffer(settings.history, previous.extra["history"][side])
        critic_optimizer.load_state_dict(previous.extra["discriminator_optimizer"])
        start, history = previous.step, list(previous.history)
    data_record = _data_record(Path(data_dir), train, val)

    def save(step: int) -> None:
        checkpoint = Checkpoint(
            config=config,
            normalization=normalization,
            step=step,
            model=net.state_dict(),
            ema=ema.state_dict(),
            optimizer=optimizer.state_dict(),
            best_val_loss=None,
            history=history,
            data=data_record,
            extra={
                "kernel": kernel.state_dict(),
                "discriminators": {side: critics[side].state_dict() for side in _SIDES},
                "discriminator_optimizer": critic_optimizer.state_dict(),
                "history": {side: buffers[side].patches for side in _SIDES},
            },
        )
        save_checkpoint(run_dir / LAST, checkpoint)
        save_checkpoint(run_dir / BEST, checkpoint)
        write_tiff(run_dir / KERNEL_FILE, kernel.unit_sum(), "YX")
        write_json(run_dir / "history.json", history)

    bar = tqdm(total=config.steps, initial=start, desc="train", unit="step", disable=not progress)
    net.train()
    for step in range(start, config.steps):
        rng = np.random.default_rng([config.seed, _TRAIN_STREAM, step])
        hazy = torch.from_numpy(hazy_patches.sample(rng, config.batch_size)).to(device)
        sharp = torch.from_numpy(sharp_patches.sample(rng, config.batch_size)).to(device)
        for critic in critics.values():
            critic.requires_grad_(False)
        result = cycle(net, kernel, sharp, hazy)
        adversarial = lsgan_generator_loss(critics["sharp"](result.fake_sharp))
        adversarial = adversarial + lsgan_generator_loss(critics["hazy"](result.fake_hazy))
        cycle_loss = result.loss_sharp + result.loss_hazy
        loss = settings.cycle_weight * cycle_loss + adversarial
        if settings.psf is None:
            loss = loss + settings.kernel_l1 * kernel.l1()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(ema, net, config.ema_decay, step)

        for critic in critics.values():
            critic.requires_grad_(True)
        shown_sharp = buffers["sharp"].query(rng, result.fake_sharp).to(device)
        shown_hazy = buffers["hazy"].query(rng, result.fake_hazy).to(device)
        critic_loss = lsgan_discriminator_loss(
            critics["sharp"](sharp), critics["sharp"](shown_sharp)
        ) + lsgan_discriminator_loss(critics["hazy"](hazy), critics["hazy"](shown_hazy))
        critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_optimizer.step()

        bar.update(1)
        bar.set_postfix(cycle=f"{cycle_loss.item():.4f}", gan=f"{adversarial.item():.3f}")
        done = step + 1
        if done % config.val_every == 0 or done == config.steps:
            with torch.no_grad():
                checked = cycle(ema, kernel, val_sharp.to(device), val_hazy.to(device))
            val_loss = float(checked.loss_sharp + checked.loss_hazy)
            history.append(
                {
                    "step": done,
                    "train_loss": loss.item(),
                    "val_loss": val_loss,
                    "val_cycle_sharp": float(checked.loss_sharp),
                    "val_cycle_hazy": float(checked.loss_hazy),
                    "generator_adversarial": adversarial.item(),
                    "discriminator": critic_loss.item(),
                }
            )
            save(done)
    bar.close()
    report_kernel(run_dir, Path(data_dir), start_kernel, kernel.unit_sum())
    return config.steps, val_loss, history


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
