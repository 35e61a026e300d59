"""The record reader and repair: property-based over lead orders, NaN/inf runs, rates and lengths."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from meit.ecg_signal import resample
from meit.leads import CANONICAL_LEADS
from meit.records import RecordRejected, SignalPolicy, read_signal, repair_signal
from tests.raw_fixtures import synthetic_signal, write_record

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    fs=st.sampled_from([100, 250, 500]),
    target=st.sampled_from([100, 250, 500]),
    seconds=st.sampled_from([2.0, 3.0]),
    case=st.sampled_from(["upper", "lower", "mixed"]),
    nan_runs=st.lists(st.tuples(st.integers(0, 11), st.integers(1, 6), st.floats(0.05, 0.9)), max_size=3),
)
def test_read_signal_roundtrip(seed, fs, target, seconds, case, nan_runs):
    rng = np.random.default_rng(seed)
    sig = synthetic_signal(rng, fs, seconds)  # canonical order, mV
    order = rng.permutation(12)
    names = [CANONICAL_LEADS[i] for i in order]
    names = [n.upper() if case == "upper" else n.lower() if case == "lower" else n for n in names]
    file_sig = sig[order].copy()
    repaired_leads = set()
    for lead, length, where in nan_runs:
        start = int(where * (file_sig.shape[1] - length))
        file_sig[lead, start : start + length] = np.nan
        repaired_leads.add(CANONICAL_LEADS[order[lead]])
    policy = SignalPolicy(fs=target, seconds=seconds)
    with tempfile.TemporaryDirectory() as tmp:
        write_record(Path(tmp), "rec", fs, file_sig, names)
        ecg, repairs = read_signal(str(Path(tmp) / "rec"), policy)
    assert ecg.shape == (12, round(target * seconds)) and ecg.dtype == np.float32
    assert np.isfinite(ecg).all()
    assert {r.split(":")[1] for r in repairs} == repaired_leads
    assert all(r.startswith("interpolated:") for r in repairs)
    clean = [i for i, name in enumerate(CANONICAL_LEADS) if name not in repaired_leads]
    want = resample(sig, fs, target)
    np.testing.assert_allclose(ecg[clean], want[clean], atol=1e-5)


@SETTINGS
@given(
    x=st.integers(20, 400).flatmap(lambda t: hnp.arrays(
        np.float64, (12, t),
        elements=st.one_of(st.floats(-5, 5), st.sampled_from([np.nan, np.inf, -np.inf])),
    )),
    gap=st.sampled_from([0.01, 0.1, 1.0]),
    policy_name=st.sampled_from(["repair", "zero", "reject"]),
)
def test_repair_never_leaves_nonfinite(x, gap, policy_name):
    policy = SignalPolicy(fs=100, seconds=1.0, max_gap_seconds=gap, missing_lead=policy_name)
    try:
        out, repairs = repair_signal(x.copy(), 100, policy)
    except RecordRejected as rej:
        assert rej.reason in {"missing_lead", "unusable_signal", "too_much_missing"}
        return
    assert np.isfinite(out).all()
    touched = {r.split(":")[1] for r in repairs}
    for i, name in enumerate(CANONICAL_LEADS):
        if not np.isfinite(x[i]).all():
            assert name in touched
        elif name in touched:  # only a dead flat limb lead with all samples finite is ever changed
            assert i < 6 and x[i].min() == x[i].max()
            assert all(r.endswith("lead was flat") for r in repairs if r.split(":")[1] == name)
        else:
            np.testing.assert_array_equal(out[i], x[i])


def test_flat_record_is_unusable():
    with pytest.raises(RecordRejected) as info:
        repair_signal(np.ones((12, 100)), 100, SignalPolicy(fs=100, seconds=1.0))
    assert info.value.reason == "unusable_signal"


def test_units_are_converted_to_millivolts(tmp_path):
    import wfdb

    sig = synthetic_signal(np.random.default_rng(0), 100, 1.0)
    wfdb.wrsamp("uv", fs=100, units=["uV"] * 12, sig_name=list(CANONICAL_LEADS), p_signal=(sig * 1000).T.copy(),
                fmt=["16"] * 12, adc_gain=[1.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    ecg, _ = read_signal(str(tmp_path / "uv"), SignalPolicy(fs=100, seconds=1.0))
    np.testing.assert_allclose(ecg, sig, atol=2e-6)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    gains=st.lists(st.sampled_from([200.0, 1000.0, 2000.0, 4.88]), min_size=12, max_size=12),
    baselines=st.lists(st.integers(-500, 500), min_size=12, max_size=12),
    nan_lead=st.integers(-1, 11),
)
def test_fast_reader_matches_wfdb(seed, gains, baselines, nan_lead):
    import wfdb

    from meit.records.reader import _fast_physical
    from meit.records.wfdb_header import read_header

    rng = np.random.default_rng(seed)
    sig = synthetic_signal(rng, 100, 2.0)
    if nan_lead >= 0:
        sig[nan_lead, 10:15] = np.nan
    names = [CANONICAL_LEADS[i] for i in rng.permutation(12)]
    with tempfile.TemporaryDirectory() as tmp:
        wfdb.wrsamp("r", fs=100, units=["mV"] * 12, sig_name=names, p_signal=sig.T.copy(), fmt=["16"] * 12,
                    adc_gain=gains, baseline=baselines, write_dir=tmp)
        path = str(Path(tmp) / "r")
        header, perm, fast = read_header(path, SignalPolicy(fs=100, seconds=2.0))
        assert fast
        ours = _fast_physical(path, header, perm)
        theirs = wfdb.rdrecord(path, physical=True).p_signal[:, perm].T
    np.testing.assert_array_equal(ours, theirs)


def test_parse_header_fields():
    from meit.records import parse_header

    text = ("# comment\nrec 2 500/1.5(0) 5000 10:00:00\n"
            "rec.dat 16+24 1000(-3)/uV 16 0 12 345 0 V1\n"
            "rec.dat 16+24 0 16 7 0 0 0 aVF lead\n")
    h = parse_header(text)
    assert h is not None and h.n_sig == 2 and h.fs == 500.0 and h.sig_len == 5000
    assert h.byte_offset == [24, 24] and h.adc_gain == [1000.0, 200.0] and h.baseline == [-3, 7]
    assert h.units == ["uV", "mV"] and h.sig_name == ["V1", "aVF lead"]
    assert parse_header("multi/3 2 500 5000\n") is None
    with pytest.raises(ValueError):
        parse_header("rec two 500\n")


def test_other_formats_go_through_wfdb(tmp_path):
    import wfdb

    sig = synthetic_signal(np.random.default_rng(2), 250, 2.0)
    sig[3, 40:44] = np.nan
    names = [CANONICAL_LEADS[i] for i in (5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6)]
    file_sig = sig[[CANONICAL_LEADS.index(n) for n in names]]
    wfdb.wrsamp("f212", fs=250, units=["mV"] * 12, sig_name=names, p_signal=file_sig.T.copy(),
                fmt=["212"] * 12, adc_gain=[200.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    ecg, repairs = read_signal(str(tmp_path / "f212"), SignalPolicy(fs=250, seconds=2.0))
    assert repairs == ["interpolated:aVR:4 samples"]
    clean = [i for i in range(12) if i != 3]
    np.testing.assert_allclose(ecg[clean], sig[clean], atol=1 / 200 + 1e-6)
    # a truncated 212 file is caught from its size
    dat = tmp_path / "f212.dat"
    dat.write_bytes(dat.read_bytes()[:100])
    with pytest.raises(RecordRejected) as info:
        read_signal(str(tmp_path / "f212"), SignalPolicy(fs=250, seconds=2.0))
    assert info.value.reason == "truncated_dat"
