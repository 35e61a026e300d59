"""Measurements of a 12-lead signal (meit.measure): close to the synthetic ground truth at 500 and 100 Hz,
plausible on real PTB-XL records, and a value or a quality flag (never a crash) whatever the signal holds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meit.errors import ConfigError, DataError
from meit.leads import CANONICAL_LEADS
from meit.measure import QUANTITIES, measure_ecg
from meit.records import read_ecg_file
from meit.synth import make_record

REAL = Path(__file__).parent / "data" / "ptbxl_real"

#: (seed, findings) of the synthetic records checked against their truth
CASES = [
    (101, ["sinus_rhythm"]), (102, ["sinus_brady", "avb1"]), (103, ["sinus_tachy", "lad"]), (104, ["afib"]),
    (105, ["sinus_rhythm", "lbbb"]), (106, ["sinus_rhythm", "rbbb", "pvc"]), (107, ["sinus_rhythm", "rad"]),
    (108, ["afib", "pvc"]),
]


@pytest.fixture(scope="module")
def records():
    return {seed: make_record(seed, findings=findings, with_lr=True) for seed, findings in CASES}


def _signal(record, fs: int) -> np.ndarray:
    digital = record.digital if fs == 500 else record.digital_lr
    return digital.astype(np.float64) / 1000.0


@pytest.mark.parametrize("fs", [500, 100])
@pytest.mark.parametrize(("seed", "findings"), CASES)
def test_measurements_match_the_synthetic_truth(records, seed, findings, fs):
    truth = records[seed].truth
    m = measure_ecg(_signal(records[seed], fs), fs)
    assert abs(m["heart_rate"].value - truth["heart_rate"]) <= 2.0
    assert abs(m["qrs_ms"].value - truth["qrs_ms"]) <= 20.0
    assert abs(m["qt_ms"].value - truth["qt_ms"]) <= 30.0
    assert abs((m["axis_deg"].value - truth["axis_deg"] + 180) % 360 - 180) <= 15.0
    if truth["pr_ms"] is not None:
        assert abs(m["pr_ms"].value - truth["pr_ms"]) <= 20.0
        assert m["p_wave"].value == 1.0
    else:  # atrial fibrillation: no P wave, irregular RR
        assert m["p_wave"].value == 0.0 and m["pr_ms"].value is None and m["pr_ms"].quality != "ok"
        assert m["rr_irregularity"].value > 0.07
    if truth["n_pvc"]:
        assert m["ventricular_premature_beats"].value >= 1
    else:
        assert m["ventricular_premature_beats"].value == 0
    if "afib" not in findings and not truth["n_pvc"]:
        assert m["rr_irregularity"].value < 0.05 and m["premature_beats"].value == 0


def test_every_value_carries_its_leads_span_and_quality(records):
    m = measure_ecg(_signal(records[101], 500), 500)
    assert set(m.values) == set(QUANTITIES)
    for name, value in m.values.items():
        assert value.ok and value.quality == "ok", name
        assert value.leads and set(value.leads) <= set(CANONICAL_LEADS), name
        assert value.spans_s or name.endswith("premature_beats"), name
        for start, end in value.spans_s:
            assert 0 <= start <= end <= 10.0, (name, start, end)
    qrs_start, qrs_end = m["qrs_ms"].spans_s[0]
    assert math.isclose((qrs_end - qrs_start) * 1000, m["qrs_ms"].value, abs_tol=1.0)
    assert set(m["st_j60_mv"].per_lead) == set(CANONICAL_LEADS)
    json = m.to_json()
    assert json["values"]["qrs_ms"]["leads"] and json["lead_quality"]["I"] == "ok"


def test_bundle_branch_blocks_are_told_apart_by_their_first_and_last_forces(records):
    lbbb = measure_ecg(_signal(records[105], 500), 500)
    rbbb = measure_ecg(_signal(records[106], 500), 500)
    normal = measure_ecg(_signal(records[101], 500), 500)
    assert rbbb["qrs_terminal_mv"].per_lead["V1"] > 0.05 > normal["qrs_terminal_mv"].per_lead["V1"]
    assert lbbb["qrs_terminal_mv"].per_lead["V1"] < -0.05
    assert lbbb["qrs_initial_mv"].per_lead["V6"] > 0 > normal["qrs_initial_mv"].per_lead["V6"]  # septal q


def test_st_elevation_is_read_in_the_leads_the_truth_names():
    record = make_record(111, findings=["sinus_rhythm", "st_elevation"])
    m = measure_ecg(record.signal, 500)
    named = record.truth["st_leads"]
    assert named
    assert max(m["st_j60_mv"].per_lead[lead] for lead in named) >= 0.1


def test_low_voltage_is_read_from_the_qrs_amplitudes():
    low = make_record(112, findings=["sinus_rhythm", "low_voltage"])
    m = measure_ecg(low.signal, 500)
    assert m["qrs_amplitude_mv"].detail["limb_max_mv"] < 0.55
    assert abs(m["qrs_amplitude_mv"].detail["limb_max_mv"] - low.truth["qrs_amp_limb_mv"]) < 0.1


def test_dropped_and_broken_leads_are_left_out_not_averaged_in(records):
    signal = _signal(records[101], 500)
    full = measure_ecg(signal, 500)
    damaged = signal.copy()
    damaged[[0, 6, 9]] = 0.0  # electrodes off
    damaged[7, 1000:1200] = np.nan  # a gap
    m = measure_ecg(damaged, 500)
    assert m.lead_quality["I"] == "flat" and m.lead_quality["V2"] == "non_finite" and m.lead_quality["II"] == "ok"
    assert "I" not in m["qrs_ms"].leads and "V2" not in m["st_j60_mv"].per_lead
    assert abs(m["heart_rate"].value - full["heart_rate"].value) < 1.0
    assert abs(m["axis_deg"].value - full["axis_deg"].value) < 10.0  # fitted from the other limb leads


def test_too_little_signal_gives_quality_flags():
    assert measure_ecg(np.zeros((12, 5000)), 500)["heart_rate"].quality == "no_usable_lead"
    assert measure_ecg(np.zeros((12, 40)), 100)["qrs_ms"].quality == "record_too_short"
    noise = np.random.default_rng(0).normal(0, 0.05, (12, 5000))
    m = measure_ecg(noise, 500)
    assert all(value.value is None or np.isfinite(value.value) for value in m.values.values())


def test_bad_input_is_refused_with_what_was_expected():
    with pytest.raises(DataError, match=r"\(12, T\).*got shape \(3, 100\)"):
        measure_ecg(np.zeros((3, 100)), 500)
    with pytest.raises(ConfigError, match="fs"):
        measure_ecg(np.zeros((12, 1000)), 0)
    with pytest.raises(DataError, match="dtype"):
        measure_ecg(np.zeros((12, 1000), dtype=complex), 500)


def _check(m) -> None:
    """A value is finite with quality ok, or None with a reason."""
    assert set(m.values) == set(QUANTITIES)
    for name, value in m.values.items():
        if value.value is None:
            assert value.quality != "ok", name
        else:
            assert np.isfinite(value.value) and value.quality == "ok", name
            assert all(np.isfinite(v) for v in value.per_lead.values()), name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fs=st.sampled_from([100, 250, 500]),
    seconds=st.floats(0.5, 6.0),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.0, 5.0),
    flat=st.lists(st.integers(0, 11), max_size=12),
)
def test_random_signals_give_a_value_or_a_quality_flag(fs, seconds, seed, scale, flat):
    rng = np.random.default_rng(seed)
    signal = rng.normal(0.0, scale, (12, max(int(seconds * fs), 1)))
    signal[flat] = 0.0
    _check(measure_ecg(signal, fs))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    fs=st.sampled_from([100, 500]),
    noise=st.floats(0.0, 0.5),
    missing=st.lists(st.integers(0, 11), max_size=11, unique=True),
    constant=st.floats(-2.0, 2.0),
)
def test_damaged_ecgs_give_a_value_or_a_quality_flag(seed, fs, noise, missing, constant):
    record = make_record(seed, seconds=4.0, with_lr=fs == 100)
    signal = _signal(record, fs)
    signal = signal + np.random.default_rng(seed).normal(0.0, noise, signal.shape) + constant
    signal[missing] = 0.0
    m = measure_ecg(signal, fs)
    _check(m)
    if len(missing) <= 6 and noise <= 0.05:  # most leads and little noise: the rate is read, and right
        assert abs(m["heart_rate"].value - record.truth["heart_rate"]) <= 0.1 * record.truth["heart_rate"]


@pytest.fixture(scope="module")
def real():
    db = pd.read_csv(REAL / "ptbxl_database.csv", index_col="ecg_id")
    return {i: measure_ecg(*read_ecg_file(REAL / row["filename_lr"])) for i, row in db.iterrows()}


def test_real_records_measure_plausibly(real):
    for ecg_id, m in real.items():
        assert 40 <= m["heart_rate"].value <= 180, ecg_id
        assert 60 <= m["qrs_ms"].value <= 180, ecg_id
        if m["qtc_ms"].ok:
            assert 320 <= m["qtc_ms"].value <= 560, ecg_id


def test_real_records_agree_with_what_their_reports_state(real):
    assert real[2]["heart_rate"].value < 60  # "sinusbradykardie"
    assert real[164]["heart_rate"].value > 100  # "sinustachykardi"
    assert real[17]["heart_rate"].value > 100  # "tachykardes vorhofflimmern"
    assert 120 <= real[23]["heart_rate"].value <= 140  # 2:1 flutter, "hf von 140 auf 128"
    assert real[310]["qrs_ms"].value >= 120  # right bundle branch block
    assert real[102]["pr_ms"].value > 200  # "a-v block i"
    assert real[260]["axis_deg"].value < -30  # abnormal left axis deviation (ALAD)
    assert real[222]["axis_deg"].value > 90  # "ueberdrehter rechtstyp" (ARAD)
    for ecg_id in (1, 2, 7, 8, 87, 102, 164, 293, 310):  # sinus rhythm: P waves, regular
        assert real[ecg_id]["p_wave"].value == 1.0 and real[ecg_id]["rr_irregularity"].value < 0.07, ecg_id
