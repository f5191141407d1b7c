#!/usr/bin/env bash
# Unpaired training against paired training at the same budget, on simulated data.
# Usage (from the repository root, after `make setup`): bash docs/results/unpaired/reproduce.sh [WORK]
# About 2 h on 2 CPU cores; each stage is skipped when its output exists.
set -euo pipefail
HM="${HM:-.venv/bin/hazematching}"
WORK="${1:-runs/unpaired}"
mkdir -p "$WORK"
# the network and budget shared by every method (the bundled model's network, 1000 steps)
NET=(--steps 1000 --patch-size 64 --batch-size 8 --ema-decay 0.995 --width 32 --channel-mult 1,2,2
     --attention 4 --val-every 100 --seed 0 --no-progress)

# data: paired training pairs, unpaired training images (each of its own sample, another seed),
# and held-out pairs of a third seed for the evaluation (its test/ split)
[ -f "$WORK/paired/simulation.json" ] || $HM simulate "$WORK/paired" --pairs 150 --size 128 --seed 7 --no-progress
[ -f "$WORK/data/simulation.json" ] || $HM simulate "$WORK/data" --unpaired --pairs 150 --size 128 --seed 11 \
    --no-progress
[ -f "$WORK/heldout/simulation.json" ] || $HM simulate "$WORK/heldout" --pairs 50 --size 128 --seed 101 \
    --split 0.2,0.4,0.4 --no-progress

# the paired route: HazeMatching and the MSE U-Net
for method in hazematching unet; do
    [ -f "$WORK/paired-$method/best.pt" ] || $HM train "$WORK/paired" --out "$WORK/paired-$method" \
        --method "$method" --lr 1e-3 "${NET[@]}"
done

# the unpaired route: the CycleGAN generator with a learned 31 x 31 kernel, then HazeMatching
# on pairs synthesised from the confocal images with that kernel and a fitted noise model
[ -f "$WORK/cyclegan/best.pt" ] || $HM train "$WORK/data" --out "$WORK/cyclegan" \
    --method cyclegan --kernel-size 31 --lr 5e-4 "${NET[@]}"
[ -f "$WORK/synthetic/synthesis.json" ] || $HM synthesize "$WORK/cyclegan" "$WORK/data" --out "$WORK/synthetic" \
    --no-progress
[ -f "$WORK/synthetic-hazematching/best.pt" ] || $HM train "$WORK/synthetic" \
    --out "$WORK/synthetic-hazematching" --method hazematching --lr 1e-3 "${NET[@]}"

# evaluation of all four on the same held-out test pairs (HazeMatching: 8 samples x 20 steps)
for run in paired-hazematching paired-unet cyclegan synthetic-hazematching; do
    [ -f "$WORK/report/methods/$run.json" ] || $HM evaluate "$WORK/$run" "$WORK/heldout" \
        --out "$WORK/report" --name "$run" --figures 3 --no-progress
done
