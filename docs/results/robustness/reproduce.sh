#!/usr/bin/env bash
# Robustness of the bundled (domain-randomised) model against the single-configuration model of
# the same recipe and budget, on held-out conditions outside the training ranges
# (packaging/robustness.toml) and on pairs rendered by microsim, an independent simulator.
# Usage (from the repository root, after `make setup`): bash docs/results/robustness/reproduce.sh
# Each stage is skipped when its output exists.
set -euo pipefail
HERE=docs/results/robustness

# 1. the single-configuration model: the same recipe on fixed-configuration pairs, stopped
#    before packaging (the bundled model before this one is that model's reflow student)
[ -f runs/default-model/calibration/calibration.json ] || SIMULATION= PAIRS=150 \
    SPLIT=0.8,0.1,0.1 PACKAGE=0 bash packaging/build_default_model.sh runs/default-model

# 2. microsim pairs, in an environment of their own (microsim needs numpy < 2)
if [ ! -d runs/microsim-test ]; then
    [ -x runs/microsim-env/bin/python ] || {
        python3 -m venv runs/microsim-env
        runs/microsim-env/bin/pip install --quiet "microsim==0.0.12.post0" tifffile
    }
    MICROSIM_CACHE=0 OMP_NUM_THREADS=1 runs/microsim-env/bin/python "$HERE/microsim_pairs.py" \
        runs/microsim-test --pairs 20 --size 128 --seed 404
fi

# 3. the bundled model, built as it was released (without the U-Net baseline, which the table
#    does not use); its stage 5b measures both models on every condition of the plan and on the
#    microsim pairs (runs/robust-model/robustness), and its card shows its own rows
[ -f runs/robust-model/robustness/robustness.json ] || BASELINE=0 \
    COMPARE=runs/default-model/reflow ROBUSTNESS_DATA=microsim=runs/microsim-test \
    bash packaging/build_default_model.sh
cp runs/robust-model/robustness/robustness.md runs/robust-model/robustness/robustness.json \
    runs/microsim-test/microsim.json "$HERE/"

# 4. the two models compared pair by pair (mean difference, its standard error, wins)
.venv/bin/python "$HERE/paired_differences.py" runs/robust-model/robustness bundled single-config \
    "$HERE/paired.json" > "$HERE/paired.md"
