#!/usr/bin/env bash
# Rebuilds docs/results/simulated from scratch on CPU (about 1 h on 2 cores).
# Usage: bash docs/results/reproduce.sh [WORK_DIR]   (run from the repository root, after `make setup`)
set -euo pipefail
HM="${HM:-.venv/bin/hazematching}"
WORK="${1:-runs/report}"
REPORT=docs/results/simulated
mkdir -p "$WORK"

# training data (48 train / 6 val / 6 test pairs of 128 px) and separate held-out data
# (a different seed: 20 pairs for calibration and the RL iteration count, 20 for the report)
[ -d "$WORK/data" ] || $HM simulate "$WORK/data" --pairs 60 --size 128 --seed 7 --no-progress
[ -d "$WORK/heldout" ] || $HM simulate "$WORK/heldout" --pairs 50 --size 128 --seed 101 \
    --split 0.2,0.4,0.4 --no-progress

# the same network, budget and seed for the three learned methods
for method in hazematching unet indi; do
    [ -f "$WORK/$method/best.pt" ] || $HM train "$WORK/data" --out "$WORK/$method" \
        --method "$method" --steps 1200 --patch-size 64 --batch-size 8 --lr 1e-3 \
        --ema-decay 0.99 --channel-mult 1,2,2 --attention 4 --val-every 100 --seed 0 --no-progress
done
$HM richardson-lucy "$WORK/heldout" --out "$WORK/rl" --psf "$WORK/data/widefield_psf.tif" \
    --no-progress

# calibration on the held-out val split (never seen in training), 8 samples as in the report
for method in hazematching indi; do
    $HM calibrate "$WORK/$method" "$WORK/heldout" --samples 8 --steps 20 --no-progress \
        --out "docs/results/calibration-fit/$method"
done

# the report, on the held-out test split
rm -rf "$REPORT"
$HM evaluate "$WORK/hazematching" "$WORK/heldout" --out "$REPORT" --samples 8 --steps 20 --figures 3 --no-progress
$HM evaluate "$WORK/unet" "$WORK/heldout" --out "$REPORT" --figures 3 --no-progress
$HM evaluate "$WORK/indi" "$WORK/heldout" --out "$REPORT" --samples 8 --steps 1 --figures 3 --no-progress
$HM evaluate "$WORK/indi" "$WORK/heldout" --out "$REPORT" --samples 8 --steps 20 --figures 3 --no-progress
$HM evaluate "$WORK/rl" "$WORK/heldout" --out "$REPORT" --figures 3 --no-progress
