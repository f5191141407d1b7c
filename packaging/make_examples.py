"""Write the example images in examples/ from a simulated data folder (see build_default_model.sh).

Each simulated pair becomes `widefield_N.tif` (the hazy input a user would dehaze) and
`confocal_N.tif` (the simulated ground truth, to compare with). The pairs come from a seed that
no training or evaluation data of the bundled model uses.

Usage: python packaging/make_examples.py SIMULATED_DIR OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from hazematching.data.tiff import read_pair, write_tiff


def main(source: Path, out: Path) -> None:
    """Split every pair under `source` into a widefield and a confocal TIFF in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(sorted(source.glob("*/pair_*.tif")), start=1):
        widefield, confocal = read_pair(path)
        write_tiff(out / f"widefield_{index}.tif", widefield[0], "YX")
        write_tiff(out / f"confocal_{index}.tif", confocal[0], "YX")
        print(f"{path} -> {out}/widefield_{index}.tif, confocal_{index}.tif")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
