"""Controls: evaluate again with an ECG that is not the record's own, to show the reports follow the signal.

A model that only learned the report template (or the findings' base rates) scores about the same
when it reads another record's ECG (``shuffled``) or a flat line (``zeros``); a model that reads the
ECG loses clinical F1. The *grounding* block of ``metrics.json`` is that loss: real minus control.

Like the robustness perturbations, a control replaces the stored signal (mV, the dataset's rate)
before the encoder's transform, through the dataset's ``perturb`` hook ``(signal, fs, id) → signal``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from meit.errors import DataError

ControlName = Literal["shuffled", "zeros"]
#: metrics whose drop from the real evaluation to a control is reported under ``grounding``
GROUNDING_METRICS: tuple[str, ...] = ("clinical_micro_f1", "clinical_macro_f1", "meteor")


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation ``p`` of ``range(n)`` with ``p[i] != i`` for every ``i``, deterministic in ``seed``.

    Shuffle the indices, then send each to the next one in shuffled order (the last to the first):
    a uniformly drawn single n-cycle, so no record keeps its own ECG, in O(n) without retries.
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 elements, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be ≥ 0, got {seed}")
    order = np.random.default_rng(seed).permutation(n)
    target = np.empty(n, dtype=np.int64)
    target[order] = np.roll(order, -1)
    return target


class ZerosEcg:
    """Every record reads a flat all-zero signal of its own shape (no information at all)."""

    name = "zeros"
    min_records = 1

    def __init__(self, split: Any = None, seed: int = 0) -> None:
        """Same signature as every control; a flat line needs neither the rows nor a seed."""

    def __call__(self, signal: np.ndarray, fs: int, record_id: str) -> np.ndarray:
        return np.zeros_like(signal)

    def source_of(self, record_id: str) -> str | None:
        return None


class ShuffledEcg:
    """Every record reads the ECG of another record of the same evaluated subset (``derangement``).

    ``split`` must be exactly the rows evaluated (after ``max_samples``), so that the swapped signals
    come from the same population and the same rate; ids must be unique to find a row's partner.
    """

    name = "shuffled"
    min_records = 2

    def __init__(self, split: Any, seed: int) -> None:
        self.ids = [str(i) for i in split["id"]]
        if len(set(self.ids)) != len(self.ids):
            raise DataError("the shuffled control needs unique record ids in the evaluated split")
        rates = sorted({int(f) for f in split["fs"]})
        if len(rates) > 1:
            raise DataError(f"the shuffled control needs one sampling rate in the evaluated split, got {rates}")
        self.partner = derangement(len(self.ids), seed)
        self._row = {record_id: i for i, record_id in enumerate(self.ids)}
        self._signals = split.select_columns(["ecg"]).with_format("numpy")

    def _partner_row(self, record_id: str) -> int:
        try:
            return int(self.partner[self._row[record_id]])
        except KeyError as err:
            raise DataError(f"record {record_id!r} is not in the subset the shuffled control was built on") from err

    def source_of(self, record_id: str) -> str | None:
        """The id of the record whose ECG ``record_id`` reads."""
        return self.ids[self._partner_row(record_id)]

    def __call__(self, signal: np.ndarray, fs: int, record_id: str) -> np.ndarray:
        return np.asarray(self._signals[self._partner_row(record_id)]["ecg"], dtype=np.float32)


Control = ShuffledEcg | ZerosEcg
#: name → control class, built from (the evaluated rows, seed); adding a control is adding an entry
CONTROLS: dict[str, type[Control]] = {"shuffled": ShuffledEcg, "zeros": ZerosEcg}


def _control_class(name: str) -> type[Control]:
    if name not in CONTROLS:
        raise ValueError(f"unknown control {name!r}; choose from {sorted(CONTROLS)}")
    return CONTROLS[name]


def build_control(name: str, split: Any, seed: int) -> Control:
    """The signal hook of control ``name`` for the evaluated rows ``split``."""
    return _control_class(name)(split, seed)


def skip_reason(name: str, n: int) -> str | None:
    """Why control ``name`` cannot run on ``n`` records (None when it can)."""
    needed = _control_class(name).min_records
    if n < needed:
        return f"the {name} control needs at least {needed} evaluated records, got {n}"
    return None


def grounding(real: Mapping[str, Any], control: Mapping[str, Any]) -> dict[str, float | None]:
    """Real minus control for each of ``GROUNDING_METRICS`` (None when a side did not compute it)."""
    drops: dict[str, float | None] = {}
    for key in GROUNDING_METRICS:
        a, b = real.get(key), control.get(key)
        numbers = isinstance(a, int | float) and isinstance(b, int | float)
        drops[f"{key}_drop"] = float(a) - float(b) if numbers else None  # type: ignore[arg-type]
    return drops
