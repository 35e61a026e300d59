"""Reading raw ECG records (WFDB headers and signals, ``.npy`` arrays) into clean millivolt arrays.

A leaf package (it imports only other leaf modules: ``meit.errors``, ``meit.leads``,
``meit.ecg_signal``), so dataset preparation (``data_prep``), single-record generation and retrieval
queries read a record in exactly one way without depending on each other.
"""

from __future__ import annotations

from meit.records.reader import DROPPED_LEADS, read_ecg, read_ecg_file, read_signal
from meit.records.repair import (
    LIMB_LEADS,
    MAX_LEAD_MEDIAN_MV,
    MAX_SAMPLE_MV,
    REJECT_REASONS,
    SIGNAL_POLICY_VERSION,
    RecordRejected,
    SignalPolicy,
    check_amplitude,
    limb_derivation,
    repair_gaps,
    repair_signal,
)
from meit.records.wfdb_header import (
    Header,
    load_header,
    millivolts_per_unit,
    parse_header,
    read_header,
    select_leads,
)

__all__ = [
    "DROPPED_LEADS",
    "LIMB_LEADS",
    "MAX_LEAD_MEDIAN_MV",
    "MAX_SAMPLE_MV",
    "REJECT_REASONS",
    "SIGNAL_POLICY_VERSION",
    "Header",
    "RecordRejected",
    "SignalPolicy",
    "check_amplitude",
    "limb_derivation",
    "load_header",
    "millivolts_per_unit",
    "parse_header",
    "read_ecg",
    "read_ecg_file",
    "read_header",
    "read_signal",
    "repair_gaps",
    "repair_signal",
    "select_leads",
]
