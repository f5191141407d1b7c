#!/usr/bin/env bash
# Robustness of the bundled (domain-randomised) model against the single-configuration model of
# the same recipe and budget, on held-out conditions outside the training ranges
# (packaging/robustness.toml) and on pairs rendered by microsim, an independent simulator.
# Usage (from the repository root, after `make setup`): bash docs/results/robustness/reproduce.sh
# Each stage is skipped when its output exists.
set -euo pipefail
HM="${HM:-.venv/bin/hazematching}"
HERE=docs/results/robustness

# 1. the two models: the single-configuration one (stopped before packaging) and the bundled one
#    (its build runs `hazematching robustness` on both, stage 5b, into runs/robust-model/robustness)
[ -f runs/default-model/calibration/calibration.json ] || SIMULATION= PAIRS=150 \
    SPLIT=0.8,0.1,0.1 PACKAGE=0 bash packaging/build_default_model.sh runs/default-model
[ -f runs/robust-model/robustness/robustness.json ] || bash packaging/build_default_model.sh

# 2. microsim pairs, in an environment of their own (microsim needs numpy < 2)
if [ ! -d runs/microsim-test ]; then
    [ -x runs/microsim-env/bin/python ] || {
        python3 -m venv runs/microsim-env
        runs/microsim-env/bin/pip install --quiet "microsim==0.0.12.post0" tifffile
    }
    MICROSIM_CACHE=0 OMP_NUM_THREADS=1 runs/microsim-env/bin/python "$HERE/microsim_pairs.py" \
        runs/microsim-test --pairs 20 --size 128 --seed 404
fi

# 3. the table: every condition of the plan plus the microsim pairs, both models
[ -f runs/robustness/robustness.json ] || $HM robustness runs/robust-model/reflow \
    runs/default-model/reflow --names bundled,single-config --conditions packaging/robustness.toml \
    --data microsim=runs/microsim-test --out runs/robustness --no-progress
cp runs/robustness/robustness.md runs/robustness/robustness.json "$HERE/"
