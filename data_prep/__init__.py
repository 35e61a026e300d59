"""Raw-source converters: PhysioNet folders → the prepared dataset every later stage reads.

The lowest layer of meit: it may use ``meit.leads``, ``meit.errors``, ``meit.paths`` and
``meit.data.transforms`` but never models or training. See docs/data.md for the policies.
"""

from __future__ import annotations

from data_prep.common import REJECT_REASONS, SPLITS, SignalPolicy, read_signal
from data_prep.mimic_iv_ecg import prepare_mimic_iv_ecg
from data_prep.ptbxl import prepare_ptbxl

__all__ = ["REJECT_REASONS", "SPLITS", "SignalPolicy", "prepare_mimic_iv_ecg", "prepare_ptbxl", "read_signal"]
