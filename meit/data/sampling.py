"""Training orders: length-grouped batches, and finding-balanced sampling (rare findings seen more often).

Both are seeded per epoch like ``DistributedSampler`` (``set_epoch``), so a resumed run draws the same order and
every process of a distributed run the same indices (accelerate then gives each its share).

A report set is long-tailed (sinus rhythm in half the records, a bundle branch block in one of twenty).
Measured on the quickstart (docs/evaluation.md, "Grounding"): after about one epoch the model writes the
common findings and none of the rare ones, although the encoder separates them. Drawing records with a
probability that grows as their rarest stated finding gets rarer gives the rare sentences more gradient
steps in the same time. ``power`` sets how far: 0 is uniform, 0.5 square-root inverse frequency (a usual
long-tail setting), 1 inverse frequency. Findings come from the reference reports (``meit.findings``), so
this works on any dataset's text and needs no label column.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from meit.findings import FINDINGS, finding_matrix


def finding_balance_weights(reports: Sequence[str], power: float) -> np.ndarray:
    """One sampling weight per report: ``(1 / share of its rarest stated finding) ** power``.

    A report that states no known finding weighs as much as one with the most common finding. Weights are
    scaled to mean 1, so they read as "times as often as uniform sampling"."""
    if not 0.0 <= power <= 1.0:
        raise ValueError(f"finding balance power must be in [0, 1], got {power}")
    if not len(reports):
        return np.zeros(0)
    stated = finding_matrix(reports, list(FINDINGS)).astype(bool)
    share = stated.mean(axis=0)
    # rarest stated finding per report; reports without one get the commonest share
    commonest = share.max() if share.max() > 0 else 1.0
    rarest = np.where(stated, share[None, :], np.inf).min(axis=1)
    rarest = np.where(np.isfinite(rarest), rarest, commonest)
    weights = rarest ** -power
    return weights / weights.mean()


class EpochSeededSampler(Sampler[int]):
    """``size`` indices per epoch, drawn from a generator seeded with ``seed + epoch``; call ``set_epoch``."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(self._order(torch.Generator().manual_seed(self.seed + self.epoch)))

    def _order(self, generator: torch.Generator) -> list[int]:
        raise NotImplementedError


class LengthGroupedSampler(EpochSeededSampler):
    """Shuffle, then sort within mega-batches by length, so a batch holds similar lengths."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, mega_batch_mult: int = 50):
        super().__init__(len(lengths), seed)
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.mega = max(batch_size * mega_batch_mult, batch_size)

    def _order(self, generator: torch.Generator) -> list[int]:
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        out: list[int] = []
        for start in range(0, len(order), self.mega):
            chunk = order[start : start + self.mega]
            out.extend(sorted(chunk, key=lambda i: -self.lengths[i]))
        return out


class WeightedEpochSampler(EpochSeededSampler):
    """``len(weights)`` draws with replacement per epoch, probability ∝ weight."""

    def __init__(self, weights: Sequence[float] | np.ndarray, seed: int = 0) -> None:
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if self.weights.ndim != 1 or not len(self.weights):
            raise ValueError("sampling weights must be a non-empty 1-D sequence")
        if not bool(torch.isfinite(self.weights).all()) or bool((self.weights < 0).any()) or not self.weights.sum() > 0:
            raise ValueError("sampling weights must be finite, non-negative and not all zero")
        super().__init__(len(self.weights), seed)

    def _order(self, generator: torch.Generator) -> list[int]:
        return torch.multinomial(self.weights, self.size, replacement=True, generator=generator).tolist()
