"""Measurements read from a 12-lead ECG signal alone: beats, rate, rhythm, intervals, axis, ST, voltages.

A layer of its own, right above the leaf modules, so that what is measured can never depend on a report's
text: :mod:`meit.verify` compares reports with these numbers, and the evaluation and benchmarks above use
both. Every value carries the leads and the time span it came from, and a quality flag saying why it is
missing when it could not be measured (see docs/evaluation.md, "Verifying reports against the waveform").
"""

from __future__ import annotations

from meit.measure.measurements import (
    ANALYSIS_FS,
    LIMB,
    PRECORDIAL,
    QUANTITIES,
    EcgMeasurements,
    Measurement,
    measure_ecg,
)

__all__ = ["ANALYSIS_FS", "LIMB", "PRECORDIAL", "QUANTITIES", "EcgMeasurements", "Measurement", "measure_ecg"]
