"""Per-pair MMSE differences between two models of a `hazematching robustness` folder.

The robustness table compares condition means; with 20 pairs per condition, a difference of a
few tenths of a dB may be noise. This pairs the two models image by image (same test pairs,
same noise seed) and gives, per condition, the mean difference of MMSE RI-PSNR (A minus B), its
standard error and on how many pairs A is better.

Usage: python paired_differences.py ROBUSTNESS_DIR A B OUT.json   (prints a Markdown table)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def per_image(report: Path) -> dict[str, float]:
    """MMSE RI-PSNR per test image of one evaluated model."""
    record = json.loads(report.read_text())
    return {row["image"]: row["mmse"]["ri_psnr"] for row in record["per_image"]}


def main(folder: Path, first: str, second: str, out: Path) -> None:
    """Write OUT.json and print the table, conditions in the order of robustness.json."""
    conditions = json.loads((folder / "robustness.json").read_text())["plan"]["conditions"]
    rows = []
    for condition in conditions:
        methods = folder / "reports" / condition / "methods"
        a, b = per_image(methods / f"{first}.json"), per_image(methods / f"{second}.json")
        diff = np.array([a[name] - b[name] for name in sorted(a)])
        rows.append(
            {
                "condition": condition,
                "pairs": len(diff),
                "mean_db": float(diff.mean()),
                "standard_error_db": float(diff.std(ddof=1) / np.sqrt(len(diff))),
                "first_better": int((diff > 0).sum()),
            }
        )
    out.write_text(json.dumps({"first": first, "second": second, "rows": rows}, indent=2) + "\n")
    print(f"| condition | {first} minus {second} (dB) | standard error (dB) | {first} better |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| `{r['condition']}` | {r['mean_db']:+.2f} | {r['standard_error_db']:.2f} "
            f"| {r['first_better']} of {r['pairs']} |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]))
