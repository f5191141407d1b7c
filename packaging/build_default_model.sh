#!/usr/bin/env bash
# Rebuilds the bundled default model, model_zoo/hazematching-simulated/, and examples/ from
# scratch on CPU (about 3.5 h on 2 cores).
# Usage (from the repository root, after `make setup`):
#   bash packaging/build_default_model.sh [WORK_DIR]        (default WORK_DIR: runs/robust-model)
#   MAINTAINER=your-github-user bash packaging/build_default_model.sh   (to upload to the zoo)
# The training and in-range held-out pairs are domain-randomised (`simulate --randomize`, the
# default ranges of RandomizationConfig). The single-configuration model it is compared with is
# the same recipe on fixed-configuration pairs, stopped before packaging (PACKAGE=0):
#   SIMULATION= PAIRS=150 SPLIT=0.8,0.1,0.1 PACKAGE=0 bash packaging/build_default_model.sh \
#       runs/default-model
# BASELINE=0 leaves out the MSE U-Net baseline (stage 2; the teacher then trains on both
# cores): the card's evaluation table then has no baseline row. ROBUSTNESS_DATA adds folders of
# test pairs made elsewhere to the robustness table (stage 5b), e.g.
# ROBUSTNESS_DATA=microsim=runs/microsim-test (docs/results/robustness/reproduce.sh renders
# those with microsim). COMPARE (a checkpoint or run folder; default runs/previous-0.2.3, the
# previous bundled model's training/best.pt: `mkdir -p runs/previous-0.2.3 && git show
# d28d680:model_zoo/hazematching-simulated/training/best.pt > runs/previous-0.2.3/best.pt`) adds
# rows of another model to the robustness table, named COMPARE_NAME (default previous).
# Stages whose output exists are skipped, so an interrupted build continues.
set -euo pipefail
HM="${HM:-.venv/bin/hazematching}"
PY="${PY:-.venv/bin/python}"
WORK="${1:-runs/robust-model}"
BASELINE="${BASELINE:-1}"
SIMULATION="${SIMULATION---randomize}"
PAIRS="${PAIRS:-600}"
SPLIT="${SPLIT:-0.9,0.1,0}"
NAME=hazematching-simulated
ZOO="model_zoo/$NAME"
mkdir -p "$WORK"

# 1. data: training pairs (with their own val split for checkpoint selection; only while a
#    training stage is still to run) and held-out pairs of another seed: 20 to calibrate on, 20
#    to report on (the 10 'train' pairs are unused)
trained() {
    [ -f "$WORK/reflow/done" ] && [ -f "$WORK/teacher/done" ] &&
        { [ "$BASELINE" = 0 ] || [ -f "$WORK/unet/done" ]; }
}
# shellcheck disable=SC2086  # SIMULATION holds zero or more options
[ -d "$WORK/data" ] || trained || $HM simulate "$WORK/data" --pairs "$PAIRS" --size 128 \
    --seed 7 --split "$SPLIT" $SIMULATION --no-progress
# shellcheck disable=SC2086
[ -d "$WORK/heldout" ] || $HM simulate "$WORK/heldout" --pairs 50 --size 128 --seed 101 \
    --split 0.2,0.4,0.4 $SIMULATION --no-progress

# 2. the model and the MSE U-Net baseline: same network, data, budget and seed; in parallel with
#    one thread each when both are to train (faster on 2 cores than one after the other), with
#    the machine's threads when one is left. `done` marks a finished run.
#    An interrupted training resumes from its last.pt (written every 250 steps). The teacher this
#    stage trained on CPU is kept, without optimizer state, in packaging/checkpoints/robust-teacher/
#    (with its config and history): copied to $WORK/hazematching/ with a `done` file, it stands
#    for this stage's HazeMatching run. Both normalise by the training set's statistics
#    (`dataset`), as that teacher did; stage 2a makes it per-image.
train() {
    local resume=()
    [ -f "$WORK/$1/last.pt" ] && resume=(--resume)
    OMP_NUM_THREADS="$2" $HM train "$WORK/data" --out "$WORK/$1" --method "$1" --steps 8000 \
        --patch-size 64 --batch-size 8 --lr 1e-3 --ema-decay 0.995 --width 32 \
        --channel-mult 1,2,2 --attention 4 --val-every 250 --seed 0 --normalization dataset \
        --no-progress \
        "${resume[@]}" >> "$WORK/train-$1.log" 2>&1
    touch "$WORK/$1/done"
}
methods=(hazematching)
[ "$BASELINE" = 1 ] && methods+=(unet)
todo=()
for method in "${methods[@]}"; do [ -f "$WORK/$method/done" ] || todo+=("$method"); done
threads=$([ "${#todo[@]}" -gt 1 ] && echo 1 || nproc)
for method in "${todo[@]}"; do train "$method" "$threads" & done
wait
for method in "${methods[@]}"; do [ -f "$WORK/$method/done" ]; done

# 2a. the teacher of the bundled model: the HazeMatching run fine-tuned for 3000 steps with
#     per-image normalisation (any gain, offset or bit depth). Kept, without optimizer state, in
#     packaging/checkpoints/teacher-per-image/; copied to $WORK/teacher/ with a `done` file, it
#     stands for this stage.
if [ ! -f "$WORK/teacher/done" ]; then
    resume=()
    [ -f "$WORK/teacher/last.pt" ] && resume=(--resume)
    $HM train "$WORK/data" --out "$WORK/teacher" --config "$WORK/hazematching/config.json" \
        --init "$WORK/hazematching" --normalization per-image --steps 3000 --lr 3e-4 \
        --no-progress "${resume[@]}" >> "$WORK/train-teacher.log" 2>&1
    touch "$WORK/teacher/done"
fi

# 2b. the bundled model itself: a reflow student of that teacher with an MMSE head, trained at
#     t = 0 and 1/2 on 1536 of its 20-step samples (so that one step reaches the teacher's
#     sample) and, at t = 0, on the real target of each patch (the head: the MMSE estimate)
if [ ! -f "$WORK/reflow/done" ]; then
    resume=()
    [ -f "$WORK/reflow/last.pt" ] && resume=(--resume)
    $HM train "$WORK/data" --out "$WORK/reflow" --method reflow --teacher "$WORK/teacher" \
        --teacher-steps 20 --reflow-pairs 1536 --time-grid 2 --steps 3000 --batch-size 8 \
        --lr 3e-4 --ema-decay 0.995 --val-every 250 --seed 0 --mmse-head --no-progress \
        "${resume[@]}" >> "$WORK/train-reflow.log" 2>&1
    touch "$WORK/reflow/done"
fi
# the package's sampling (samples x steps), chosen with benchmarks/few_step.py
SAMPLES=$(sed -n 's/^samples = //p' "packaging/$NAME.toml")
STEPS=$(sed -n 's/^steps = //p' "packaging/$NAME.toml")

# 3. example inputs for the README and tests: another seed, never trained or evaluated on
if [ ! -d examples ]; then
    [ -d "$WORK/examples" ] || $HM simulate "$WORK/examples" --pairs 3 --size 192 --seed 2026 \
        --no-progress
    $PY packaging/make_examples.py "$WORK/examples" examples
fi

# 4. calibration of the std on the held-out val split at the package's sampling (stored in the
#    checkpoint)
[ -d "$WORK/calibration" ] || $HM calibrate "$WORK/reflow" "$WORK/heldout" --samples "$SAMPLES" \
    --steps "$STEPS" --out "$WORK/calibration" --no-progress

# 5. evaluation on the held-out test split: the model as packaged and the U-Net baseline
[ -f "$WORK/report/methods/reflow.json" ] || $HM evaluate "$WORK/reflow" "$WORK/heldout" \
    --out "$WORK/report" --samples "$SAMPLES" --steps "$STEPS" --figures 3 --no-progress
[ "$BASELINE" = 0 ] || [ -f "$WORK/report/methods/unet.json" ] || $HM evaluate \
    "$WORK/unet" "$WORK/heldout" --out "$WORK/report" --figures 3 --no-progress
# the SWD of both over 10 seeds of its own and over 4 samples, to set the difference against
[ -f "$WORK/report/swd_spread.json" ] || $PY packaging/swd_spread.py "$WORK" \
    "$WORK/report/swd_spread.json" --run reflow --steps "$STEPS"

# the comparison model of a robustness table stops here (PACKAGE=0)
[ "${PACKAGE:-1}" = 1 ] || exit 0

# 5b. robustness on held-out conditions that each move one factor outside the training ranges
#     or record the images as other cameras do (packaging/robustness.toml), next to the previous
#     bundled model (COMPARE; skipped when it is not there)
COMPARE="${COMPARE:-runs/previous-0.2.3}"
if [ ! -f "$WORK/robustness/robustness.json" ]; then
    models=("$WORK/reflow") names=bundled extra=()
    if [ -e "$COMPARE" ] && [ "$(realpath "$COMPARE")" != "$(realpath "$WORK/reflow")" ]; then
        models+=("$COMPARE") names="bundled,${COMPARE_NAME:-previous}"
    fi
    for data in ${ROBUSTNESS_DATA:-}; do extra+=(--data "$data"); done
    $HM robustness "${models[@]}" --names "$names" --conditions packaging/robustness.toml \
        "${extra[@]}" --out "$WORK/robustness" --no-progress
fi

# 6. the package, its card showing the evaluation, unpacked into model_zoo/ with the
#    checkpoint it came from (without optimizer state) and the training and evaluation records
rm -f "$WORK/$NAME.zip"
$HM export "$WORK/reflow" --out "$WORK/$NAME.zip" --recipe "packaging/$NAME.toml" \
    --evaluation "$WORK/report" --robustness "$WORK/robustness/robustness.json" \
    ${MAINTAINER:+--maintainer "$MAINTAINER"}
rm -rf "$ZOO"
mkdir -p "$ZOO"
(cd "$ZOO" && unzip -q "$OLDPWD/$WORK/$NAME.zip")
$PY packaging/release_checkpoint.py "$WORK/reflow/best.pt" "$ZOO/training/best.pt"
cp "$WORK/reflow/config.json" "$WORK/reflow/history.json" "$ZOO/training/"
cp "$WORK/calibration/"*.png "$ZOO/training/" 2>/dev/null || true
cp "$WORK/report/summary.md" "$WORK/report/summary.json" "$WORK/report/swd_spread.json" \
    "$WORK/report/"*.png "$WORK/robustness/robustness.md" "$WORK/robustness/robustness.json" \
    "$ZOO/training/"

# 7. the README picture: input | MMSE | std | two samples of the first example (the checkpoint
#    with the package's sampling settings, keeping the samples)
$HM predict "$ZOO/training/best.pt" examples/widefield_1.tif --out "$WORK/picture" \
    --samples "$SAMPLES" --steps "$STEPS" --seed 0 --keep-samples --no-progress
mkdir -p docs/images
cp "$WORK/picture/widefield_1.png" docs/images/example.png

# 8. checks: the package alone, as a curator would run them
# (without MAINTAINER only the `maintainers` rule may fail: the zoo needs the uploader's GitHub
# user; with one, `bioimageio test` needs network to look it up)
if ! $HM check "$ZOO" 2> "$WORK/check.err"; then
    cat "$WORK/check.err" >&2
    [ -z "${MAINTAINER:-}" ] && grep -q "1 rule(s) failed: maintainers" "$WORK/check.err"
fi
.venv/bin/bioimageio test "$ZOO"
du -sh "$ZOO"
