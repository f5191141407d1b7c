"""A candidate few-step student: a one-step student fine-tuned with the energy score.

The energy score ES = E||X - y|| - 1/2 E||X - X'|| is a proper scoring rule of the distribution
of samples X (Gneiting and Raftery 2007): unlike a regression onto one teacher sample per noise
(reflow), it rewards samples that are as far apart as the posterior is wide, which is what a
calibrated std needs. Starting from a reflow student, its one-step map X = x_0 + v(x_0, 0, hazy)
is trained on the real training pairs with M samples per input (unbiased estimate over the M
samples), summed over three scales (the patch and its 2x2 and 4x4 block averages), each norm the
RMS over pixels; a student with an MMSE head keeps regressing x_0 + head onto the target at the
same time. No validation: `few_step.py` calibrates and evaluates the result on held-out pairs.
Writes a checkpoint without optimizer state (method `reflow`, the student's normalisation).

    python benchmarks/energy_score.py STUDENT DATA --out runs/energy/best.pt --steps 800
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from record import write_result
from torch import Tensor, nn

from hazematching.data.dataset import PatchSampler, load_training_data
from hazematching.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from hazematching.model.network import build_velocity_net
from hazematching.training.ema import ema_update

SCALES = (1, 2, 4)


def energy_score(samples: Tensor, target: Tensor) -> Tensor:
    """Mean over inputs of the unbiased energy score of M samples, (M, B, 1, P, P) vs (B, 1,
    P, P), summed over `SCALES`; every norm is the RMS over pixels."""
    count = samples.shape[0]
    total = samples.new_zeros(())
    for scale in SCALES:
        x = samples.flatten(0, 1)
        y = target
        if scale > 1:
            x, y = F.avg_pool2d(x, scale), F.avg_pool2d(y, scale)
        x = x.reshape(count, target.shape[0], -1)
        y = y.reshape(1, target.shape[0], -1)
        fidelity = (x - y).pow(2).mean(-1).add(1e-12).sqrt().mean(0)
        rows, cols = torch.triu_indices(count, count, offset=1)
        spread = (x[rows] - x[cols]).pow(2).mean(-1).add(1e-12).sqrt().sum(0)
        total = total + (fidelity - spread / (count * (count - 1))).mean()
    return total


def step_loss(
    net: nn.Module, hazy: Tensor, target: Tensor, noise: Tensor
) -> tuple[Tensor, float, float]:
    """(loss, energy score, head MSE) of one batch; noise is (M, B, 1, P, P)."""
    count, batch = noise.shape[0], hazy.shape[0]
    x0 = noise.flatten(0, 1)
    guide = hazy.repeat(count, 1, 1, 1)
    t = torch.zeros(count * batch)
    out = net(t, torch.cat([x0, guide], dim=1))
    samples = (x0 + out[:, :1]).reshape(noise.shape)
    score = energy_score(samples, target)
    head = torch.zeros(())
    if out.shape[1] > 1:
        head = (x0 + out[:, 1:2] - target.repeat(count, 1, 1, 1)).pow(2).mean()
    return score + head, float(score.detach()), float(head.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("student", type=Path, help="reflow student checkpoint or run folder")
    parser.add_argument("data", type=Path, help="the training pairs the student learned from")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--samples", type=int, default=4, help="M samples per input")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    student = load_checkpoint(args.student)
    config = student.config
    net = build_velocity_net(config.network, config.patch_size)
    net.load_state_dict(student.ema)
    ema = copy.deepcopy(net).eval()
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    train_pairs, _ = load_training_data(args.data, config.val_fraction, config.seed)
    patches = PatchSampler(train_pairs, student.normalization, config.patch_size)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    net.train()
    for step in range(args.steps):
        rng = np.random.default_rng([args.seed, step])
        hazy, target = (torch.from_numpy(a) for a in patches.sample(rng, args.batch_size))
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        noise = torch.randn((args.samples, *hazy.shape), generator=generator)
        loss, score, head = step_loss(net, hazy, target, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(ema, net, args.ema_decay, step)
        if (step + 1) % 50 == 0:
            history.append({"step": step + 1, "energy_score": score, "head_mse": head})
            print(f"step {step + 1}: energy score {score:.4f}, head MSE {head:.4f}", flush=True)
    seconds = time.perf_counter() - start
    settings = {k: v for k, v in vars(args).items() if k not in ("student", "data", "out")}
    settings.update(student=str(args.student), data=str(args.data), scales=list(SCALES))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        args.out,
        Checkpoint(
            config=config,
            normalization=student.normalization,
            step=student.step + args.steps,
            model=ema.state_dict(),
            ema=ema.state_dict(),
            optimizer={},
            history=history,
            data=student.data,
            extra={"energy_score": settings},
        ),
    )
    write_result(
        args.out.with_suffix(".json"),
        {"settings": settings, "seconds": seconds, "history": history},
    )
    print(f"wrote {args.out} after {seconds:.0f} s")


if __name__ == "__main__":
    main()
