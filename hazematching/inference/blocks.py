"""Block-wise sampling of images too large for one pass: block geometry, windows and assembly.

An image plane is cut into core blocks of `block` px on a regular grid. Each block is sampled on
its core grown by `halo` px on every side (clipped at the image's edges), starting from the whole
image's noise at its position (`EulerSampler.sample_at`), so two blocks start alike where they
overlap. Across each border between two cores, the grown blocks of both neighbours overlap by
2 x halo px; there their results are blended with linear ramps that fall towards zero at a grown
block's edge, where its view of the image is cut off. The weights are normalised to sum to one,
so the MMSE, the std and single samples pass from one block to the next without a step. Sampling
one block needs memory for (block + 2 halo)^2 px, whatever the size of the image.

The functions here are pure: they say which pixels each block covers and put block results
together; `blockwise.py` runs the blocks, in this process or on a Dask cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import BlockConfig


@dataclass(frozen=True)
class Block:
    """One block: its grid index, its core and its grown region as (start, stop) per axis."""

    index: tuple[int, int]
    core: tuple[tuple[int, int], tuple[int, int]]
    grown: tuple[tuple[int, int], tuple[int, int]]

    def slices(self, region: tuple[tuple[int, int], tuple[int, int]]) -> tuple[slice, slice]:
        """(rows, cols) slices of a region of this block (`core` or `grown`)."""
        return slice(*region[0]), slice(*region[1])


@dataclass(frozen=True)
class BlockGrid:
    """The blocks of a `height` x `width` plane, cut as `config` says (block >= 2 x halo)."""

    height: int
    width: int
    config: BlockConfig

    @property
    def block(self) -> int:
        """Side of a core block, px."""
        return self.config.block

    @property
    def halo(self) -> int:
        """Pixels of context added on each side of a core."""
        return self.config.halo

    @property
    def shape(self) -> tuple[int, int]:
        """Blocks along Y and X."""
        return -(-self.height // self.block), -(-self.width // self.block)

    def _spans(self, start: int, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
        core = (start, min(start + self.block, size))
        grown = (max(0, start - self.halo), min(size, core[1] + self.halo))
        return core, grown

    def block_at(self, index: tuple[int, int]) -> Block:
        """The block of grid index (row, column)."""
        core_y, grown_y = self._spans(index[0] * self.block, self.height)
        core_x, grown_x = self._spans(index[1] * self.block, self.width)
        return Block(index, (core_y, core_x), (grown_y, grown_x))

    def blocks(self) -> list[Block]:
        """Every block, row by row."""
        rows, cols = self.shape
        return [self.block_at((i, j)) for i in range(rows) for j in range(cols)]

    def neighbours(self, index: tuple[int, int]) -> list[tuple[int, int]]:
        """Indices of the blocks whose grown regions reach into this block's core (itself too)."""
        rows, cols = self.shape
        return [
            (i, j)
            for i in range(max(0, index[0] - 1), min(rows, index[0] + 2))
            for j in range(max(0, index[1] - 1), min(cols, index[1] + 2))
        ]

    def _ramp(self, start: int, stop: int, size: int) -> np.ndarray:
        """1D weights over a grown span [start, stop) of an axis of `size` px.

        Rising over the first 2 x halo px where a neighbour lies before, falling over the last
        2 x halo px where one lies after, 1 elsewhere; positive everywhere. Two neighbours'
        ramps over their shared 2 x halo px sum to one.
        """
        position = np.arange(start, stop, dtype=np.float64) + 0.5
        weight = np.ones(stop - start)
        if self.halo == 0:
            return weight
        if start > 0:
            weight = np.minimum(weight, (position - start) / (2 * self.halo))
        if stop < size:
            weight = np.minimum(weight, (stop - position) / (2 * self.halo))
        return weight

    def weight(self, block: Block) -> np.ndarray:
        """2D blending weights over the block's grown region, (rows, cols)."""
        (y0, y1), (x0, x1) = block.grown
        return np.outer(self._ramp(y0, y1, self.height), self._ramp(x0, x1, self.width))


def assemble(grid: BlockGrid, index: tuple[int, int], results: dict) -> np.ndarray:
    """The output over one block's core from its neighbours' results, (C, rows, cols).

    `results` maps each index of `grid.neighbours(index)` to that block's result over its
    grown region, (C, rows, cols); they are blended with `grid.weight`.
    """
    target = grid.block_at(index)
    (ty0, ty1), (tx0, tx1) = target.core
    total: np.ndarray | None = None
    norm = np.zeros((ty1 - ty0, tx1 - tx0))
    for other_index in grid.neighbours(index):
        other = grid.block_at(other_index)
        (gy0, gy1), (gx0, gx1) = other.grown
        y0, y1, x0, x1 = max(ty0, gy0), min(ty1, gy1), max(tx0, gx0), min(tx1, gx1)
        if y0 >= y1 or x0 >= x1:
            continue
        result = results[other_index]
        weight = grid.weight(other)[y0 - gy0 : y1 - gy0, x0 - gx0 : x1 - gx0]
        part = result[:, y0 - gy0 : y1 - gy0, x0 - gx0 : x1 - gx0] * weight
        if total is None:
            total = np.zeros((result.shape[0], *norm.shape))
        total[:, y0 - ty0 : y1 - ty0, x0 - tx0 : x1 - tx0] += part
        norm[y0 - ty0 : y1 - ty0, x0 - tx0 : x1 - tx0] += weight
    assert total is not None  # a block's own grown region covers its core
    return (total / norm).astype(np.float32)
