"""Raw-source converters: PhysioNet folders → the prepared dataset every later stage reads.

The layer just above meit's leaf modules: it may use ``meit.errors``, ``meit.leads``, ``meit.paths``,
``meit.publish``, ``meit.ecg_signal`` and ``meit.records`` but never ``meit.data``, models or
training. One module per raw source (registered in :mod:`data_prep.sources`), built on
:mod:`data_prep.tables` (typed table cells), :mod:`data_prep.items` (record → row or reject) and
:mod:`data_prep.writer` (the sharded, resumable writer). See docs/data.md for the policies.

The names below are resolved on first use, so ``meit --help`` (which reads the source registry)
does not import numpy, pandas or wfdb.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from data_prep.mimic_iv_ecg import prepare_mimic_iv_ecg
    from data_prep.ptbxl import prepare_ptbxl
    from data_prep.writer import SPLITS
    from meit.records import REJECT_REASONS, SignalPolicy, read_signal

_EXPORTS: dict[str, str] = {
    "REJECT_REASONS": "meit.records",
    "SPLITS": "data_prep.writer",
    "SignalPolicy": "meit.records",
    "prepare_mimic_iv_ecg": "data_prep.mimic_iv_ecg",
    "prepare_ptbxl": "data_prep.ptbxl",
    "read_signal": "meit.records",
}

__all__ = ["REJECT_REASONS", "SPLITS", "SignalPolicy", "prepare_mimic_iv_ecg", "prepare_ptbxl", "read_signal"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'data_prep' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
