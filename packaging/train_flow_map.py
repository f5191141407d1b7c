"""Fine-tune a flow map of the bundled model's teacher (`hazematching.training.flow_map`).

It trains on the patches of the reflow student's pair cache (the same patches, normalisation and
teacher as the reflow student), so the two students differ only in what they learn. Resumes from
OUT/last.pt when present.

    .venv/bin/python packaging/train_flow_map.py packaging/checkpoints/teacher-per-image/best.pt \
        runs/robust-model/reflow/reflow_pairs.pt runs/flow-map --steps 3000
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hazematching.training.flow_map import FlowMapSettings, distill_flow_map


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("teacher", type=Path, help="the HazeMatching teacher checkpoint")
    parser.add_argument("pairs", type=Path, help="a reflow_pairs.pt cache of teacher pairs")
    parser.add_argument("out", type=Path, help="run folder (best.pt, last.pt, history.json)")
    parser.add_argument("--steps", type=int, default=FlowMapSettings.steps)
    parser.add_argument(
        "--anchor",
        type=float,
        default=FlowMapSettings.anchor,
        help="share of rows that regress the whole step onto the teacher's cached sample",
    )
    parser.add_argument("--no-head", action="store_true", help="train without an MMSE head")
    args = parser.parse_args()
    best = distill_flow_map(
        args.teacher,
        args.pairs,
        args.out,
        FlowMapSettings(steps=args.steps, anchor=args.anchor),
        head=not args.no_head,
        progress=False,
    )
    print(f"best checkpoint: {best}")


if __name__ == "__main__":
    main()
