"""Variation operators of the co-design search that know the genome's blocks.

A co-design genome has two blocks: the network genes and the accelerator genes. Good designs
are pairs of a good network and an accelerator that suits it, so the search should be able to
pair one design's network with another design's accelerator in one step. Gene-by-gene operators
(SBX, polynomial mutation) rarely do that: a child mixes both blocks at random.

:class:`BlockCrossover` exchanges a whole block between two parents (with probability
``swap``), else it crosses gene by gene (uniform). :class:`BlockMutation` mutates genes of
one block at a time (random reset to another value of the gene's list). With a single free block
(the sequential baselines hold the other one fixed) both reduce to plain uniform crossover and
random-reset mutation, so every search of a run uses the same operators.

Genes are indices into value lists, stored as floats holding integers (pymoo's convention).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation


def _blocks(blocks: Sequence[Sequence[int]]) -> list[np.ndarray]:
    out = [np.asarray(list(b), dtype=int) for b in blocks]
    return [b for b in out if b.size]


class BlockCrossover(Crossover):
    """Two parents, two children. ``blocks``: the variable indices of each block (variables
    not in a block are crossed gene by gene only). With probability ``swap`` (and more than one
    block) the children exchange one block chosen at random; else uniform crossover."""

    def __init__(self, blocks: Sequence[Sequence[int]], swap: float = 0.5, prob: float = 0.9):
        super().__init__(2, 2, prob=prob)
        self.blocks = _blocks(blocks)
        self.swap = float(swap)

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        _, n_matings, n_var = X.shape
        Y = X.copy()
        for k in range(n_matings):
            if len(self.blocks) > 1 and random_state.random() < self.swap:
                b = self.blocks[int(random_state.integers(len(self.blocks)))]
                Y[0, k, b], Y[1, k, b] = X[1, k, b], X[0, k, b]
            else:
                m = random_state.random(n_var) < 0.5
                Y[0, k, m], Y[1, k, m] = X[1, k, m], X[0, k, m]
        return Y


class BlockMutation(Mutation):
    """Per individual: pick one block at random, reset each of its genes with probability
    ``1 / len(block)`` (at least one) to another value in ``[xl, xu]``."""

    def __init__(self, blocks: Sequence[Sequence[int]], prob: float = 1.0):
        super().__init__(prob=prob)
        self.blocks = _blocks(blocks)

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        Y = np.array(X, dtype=float, copy=True)
        lo = np.asarray(problem.xl, dtype=int)
        hi = np.asarray(problem.xu, dtype=int)
        for row in Y:
            b = self.blocks[int(random_state.integers(len(self.blocks)))]
            genes = b[random_state.random(b.size) < 1.0 / b.size]
            if genes.size == 0:
                genes = b[[int(random_state.integers(b.size))]]
            for g in genes:
                n = hi[g] - lo[g] + 1
                if n < 2:
                    continue
                cur = int(round(row[g])) - lo[g]
                new = (cur + 1 + int(random_state.integers(n - 1))) % n  # any other value
                row[g] = lo[g] + new
        return Y
