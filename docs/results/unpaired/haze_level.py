"""How hazy a set of pairs is: mean RI-PSNR of the widefield channel against the confocal one.

Usage: python docs/results/unpaired/haze_level.py 'PAIRS_GLOB' ...  (2-channel TIFFs)
Used to compare the synthetic pairs of `hazematching synthesize` with real pairs.
"""

from __future__ import annotations

import glob
import sys

import numpy as np

from hazematching.data.tiff import read_pair
from hazematching.metrics.distortion import range_invariant_psnr

for pattern in sys.argv[1:]:
    pairs = [read_pair(path) for path in sorted(glob.glob(pattern))]
    scores = [range_invariant_psnr(target[0], hazy[0]) for hazy, target in pairs]
    print(f"{pattern}: {np.mean(scores):.2f} dB over {len(scores)} pairs")
