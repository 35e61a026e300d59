"""Gap repair without data loss: limb spans rebuilt (Einthoven/Goldberger), other spans blanked, nothing else touched.

Most properties run on the real PTB-XL records of tests/data/ptbxl_real (CC BY 4.0, see its SOURCES.md),
whose limb leads obey the identities to the quantisation step, with NaN/inf blocks put in at random.
"""

from __future__ import annotations

import functools
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meit.leads import CANONICAL_LEADS
from meit.records import (
    LIMB_LEADS,
    RecordRejected,
    SignalPolicy,
    limb_derivation,
    read_signal,
    repair_gaps,
    repair_signal,
)
from meit.records.repair import LIMB_DERIVATIONS
from tests.raw_fixtures import make_ptbxl, write_record

REAL = Path(__file__).parent / "data" / "ptbxl_real"
STEP_MV = 0.001  # PTB-XL stores 1000 adu per mV
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILLS = st.sampled_from([np.nan, np.inf, -np.inf])


@functools.cache
def _real() -> tuple[tuple[str, int, np.ndarray], ...]:
    """Every real record at its own rate as float64 mV, exactly the stored 1 µV grid."""
    records = []
    for hea in sorted(REAL.glob("records*/*/*.hea")):
        fs = 500 if hea.parts[-3] == "records500" else 100
        sig, repairs = read_signal(str(hea.with_suffix("")), SignalPolicy(fs=fs))
        assert repairs == []
        records.append((hea.stem, fs, np.round(sig.astype(np.float64) / STEP_MV) * STEP_MV))
    return tuple(records)


def _spans(repairs: list[str], fs: int) -> list[tuple[str, str, int, int, str]]:
    """(kind, lead, start, end, how) of every rebuilt / blanked entry, in samples."""
    out = []
    for entry in repairs:
        kind, lead, span, *how = entry.split(":", 3)
        if kind in ("rebuilt", "blanked"):
            start, end = (round(float(v) * fs) for v in span.removesuffix(" s").split("-"))
            out.append((kind, lead, start, end, how[0] if how else ""))
    return out


# --- the identities, measured on the real records -------------------------------------------------------------


def test_limb_identities_hold_on_real_records_to_the_quantisation_step():
    records = _real()
    assert len(records) == 23  # 19 at 100 Hz, 4 at 500 Hz
    for target, name in enumerate(LIMB_LEADS):
        residual = {}
        for a, b in combinations([r for r in range(6) if r != target], 2):
            ca, cb = (float(c) for c in limb_derivation(name, LIMB_LEADS[a], LIMB_LEADS[b]))
            residual[a, b] = max(float(np.abs(s[target] - ca * s[a] - cb * s[b]).max()) for _, _, s in records)
            # every pair: within one step per lead involved, weighted by its coefficient (3 steps at most)
            assert residual[a, b] <= (1 + abs(ca) + abs(cb)) * STEP_MV + 1e-9, (name, a, b)
        a, b, _, _ = LIMB_DERIVATIONS[target][0]
        assert residual[a, b] <= 1.5 * STEP_MV + 1e-9, name  # the preferred pair: within 1.5 steps
        assert residual[a, b] <= min(residual.values()) + 1e-9, name  # and never worse than any other
    # Einthoven's own law, III = II - I, to one step
    assert max(float(np.abs(s[2] - (s[1] - s[0])).max()) for _, _, s in records) <= STEP_MV + 1e-9


def test_derivations_are_exact_algebra():
    rng = np.random.default_rng(0)
    lead_i, lead_ii = rng.normal(size=(2, 50))
    six = np.stack([lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2,
                    lead_ii - lead_i / 2])
    for target in range(6):
        assert len(LIMB_DERIVATIONS[target]) == 10  # every pair of the other five is independent
        for a, b, ca, cb in LIMB_DERIVATIONS[target]:
            np.testing.assert_allclose(ca * six[a] + cb * six[b], six[target], atol=1e-12)
    assert LIMB_DERIVATIONS[2][0][:2] == (0, 1)  # III from I and II first


# --- one long gap ------------------------------------------------------------------------------------------------


@SETTINGS
@given(record=st.integers(0, 22), lead=st.integers(0, 5), where=st.floats(0, 1), seconds=st.floats(0.21, 4.0),
       fill=FILLS)
def test_a_long_limb_gap_is_rebuilt_over_its_span_only(record, lead, where, seconds, fill):
    _, fs, clean = _real()[record]
    n = round(seconds * fs)
    assume(n > round(0.2 * fs))
    start = int(where * (clean.shape[1] - n))
    x = clean.copy()
    x[lead, start:start + n] = fill
    out, repairs = repair_signal(x, fs, SignalPolicy(fs=fs))
    pair = {0: "II,III", 1: "I,III"}.get(lead, "I,II")
    assert repairs == [f"rebuilt:{LIMB_LEADS[lead]}:{start / fs:.3f}-{(start + n) / fs:.3f} s:from {pair}"]
    inside = np.zeros_like(clean, dtype=bool)
    inside[lead, start:start + n] = True
    np.testing.assert_array_equal(out[~inside], clean[~inside])  # nothing outside the span changes
    assert np.abs(out[inside] - clean[inside]).max() <= 1.5 * STEP_MV + 1e-9


@SETTINGS
@given(record=st.integers(0, 22), lead=st.integers(6, 11), where=st.floats(0, 1), seconds=st.floats(0.21, 10.0),
       fill=FILLS)
def test_a_long_precordial_gap_blanks_its_span_only(record, lead, where, seconds, fill):
    _, fs, clean = _real()[record]
    n = min(round(seconds * fs), clean.shape[1])
    assume(n > round(0.2 * fs))
    start = int(where * (clean.shape[1] - n))
    x = clean.copy()
    x[lead, start:start + n] = fill
    out, repairs = repair_signal(x, fs, SignalPolicy(fs=fs))
    assert repairs == [f"blanked:{CANONICAL_LEADS[lead]}:{start / fs:.3f}-{(start + n) / fs:.3f} s"]
    assert not out[lead, start:start + n].any()
    out[lead, start:start + n] = clean[lead, start:start + n]
    np.testing.assert_array_equal(out, clean)


# --- many gaps at once: what is kept, what is rebuilt, what is blanked ---------------------------------------------

BLOCK = st.tuples(st.integers(0, 11), st.floats(0, 1), st.floats(0.005, 3.0), FILLS)


@SETTINGS
@given(record=st.integers(0, 22), blocks=st.lists(BLOCK, min_size=1, max_size=8), gap=st.sampled_from([0.05, 0.2]),
       scale=st.sampled_from([1.0, 1e-3, 1e3]))
def test_random_gaps_lose_no_finite_sample_and_cover_every_bad_one(record, blocks, gap, scale):
    _, fs, clean = _real()[record]
    clean = clean * scale
    x = clean.copy()
    for lead, where, seconds, fill in blocks:
        n = max(1, round(seconds * fs))
        start = int(where * (x.shape[1] - n))
        x[lead, start:start + n] = fill
    bad = ~np.isfinite(x)
    policy = SignalPolicy(fs=fs, max_gap_seconds=gap)
    try:  # the gap rules alone: the amplitude limits of repair_signal would refuse a record scaled by 1e3
        out, repairs = repair_gaps(x.copy(), fs, policy)
    except RecordRejected as rej:
        assert rej.reason == "too_much_missing"
        return
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[~bad], clean[~bad])  # no finite sample is ever changed
    max_gap = round(gap * fs)
    long_runs = np.zeros_like(bad)  # samples in non-finite runs longer than max_gap
    for row in range(12):
        edges = np.diff(np.concatenate(([0], bad[row].view(np.int8), [0])))
        for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            long_runs[row, s:e] = e - s > max_gap
    covered = np.zeros_like(bad)
    for kind, lead, start, end, how in _spans(repairs, fs):
        row = CANONICAL_LEADS.index(lead)
        assert bad[row, start:end].all() and not covered[row, start:end].any()
        covered[row, start:end] = True
        if kind == "blanked":
            assert not out[row, start:end].any()
            if row < 6:  # a limb span is blanked only when fewer than two other limb leads are valid
                assert how == "no two valid limb leads"
                assert (~long_runs[[r for r in range(6) if r != row], start:end]).all(axis=1).sum() < 2
            continue
        a, b = (CANONICAL_LEADS.index(v) for v in how.removeprefix("from ").split(","))
        # rebuilt from samples of the file or interpolated over a short gap, never from another missing span
        assert not long_runs[[a, b], start:end].any()
        ca, cb = (float(c) for c in limb_derivation(lead, CANONICAL_LEADS[a], CANONICAL_LEADS[b]))
        np.testing.assert_allclose(out[row, start:end], ca * out[a, start:end] + cb * out[b, start:end],
                                   rtol=1e-12, atol=1e-12 * scale)
        if not long_runs[[0, 1], start:end].any() and row > 1:
            assert (a, b) == (0, 1)  # I and II whenever both are there
        if not bad[[a, b], start:end].any():
            bound = (1 + abs(ca) + abs(cb)) * STEP_MV * scale  # as measured on every pair of the real records
            assert np.abs(out[row, start:end] - clean[row, start:end]).max() <= bound * (1 + 1e-9)
    interpolated = {e.split(":")[1]: int(e.split(":")[2].split()[0]) for e in repairs if e.startswith("interpolated:")}
    for row, name in enumerate(CANONICAL_LEADS):
        starts = np.flatnonzero(np.diff(np.concatenate(([0], bad[row].view(np.int8), [0]))) == 1)
        ends = np.flatnonzero(np.diff(np.concatenate(([0], bad[row].view(np.int8), [0]))) == -1)
        short = sum(int(e - s) for s, e in zip(starts, ends, strict=True) if e - s <= max_gap)
        long = [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if e - s > max_gap]
        assert interpolated.get(name, 0) == short, name
        for s, e in long:
            assert covered[row, s:e].all(), name
        assert covered[row].sum() == sum(e - s for s, e in long), name


@SETTINGS
@given(record=st.integers(0, 22), blocks=st.lists(BLOCK, min_size=1, max_size=5),
       scale=st.floats(1e-2, 1e2))
def test_repair_commutes_with_scaling(record, blocks, scale):
    _, fs, clean = _real()[record]
    x = clean.copy()
    for lead, where, seconds, fill in blocks:
        n = max(1, round(seconds * fs))
        start = int(where * (x.shape[1] - n))
        x[lead, start:start + n] = fill
    policy = SignalPolicy(fs=fs, max_blanked_fraction=1.0)
    out, repairs = repair_gaps(x.copy(), fs, policy)  # the gap rules are scale-free; the amplitude limits not
    scaled, scaled_repairs = repair_gaps(x * scale, fs, policy)
    assert scaled_repairs == repairs
    np.testing.assert_allclose(scaled, out * scale, rtol=1e-12, atol=1e-15)


def test_the_issue_example_a_half_second_avf_gap_costs_half_a_second(tmp_path):
    """Before, a 0.5 s gap in aVF zero-filled all 10 s of aVF; now only the gap is rebuilt, from I and II."""
    _, fs, clean = _real()[0]
    x = clean.copy()
    x[5, 300:350] = np.nan  # 0.5 s at 100 Hz
    write_record(tmp_path, "gap", fs, x, list(CANONICAL_LEADS))
    ecg, repairs = read_signal(str(tmp_path / "gap"), SignalPolicy(fs=fs))
    assert repairs == ["rebuilt:aVF:3.000-3.500 s:from I,II"]
    assert np.abs(ecg[5] - clean[5]).max() <= 1.5 * STEP_MV + 1e-6
    np.testing.assert_allclose(np.delete(ecg, 5, axis=0), np.delete(clean, 5, axis=0), atol=1e-6)


def test_limb_spans_without_two_valid_limb_leads_are_blanked():
    _, fs, clean = _real()[3]
    x = clean.copy()
    x[:5, 200:400] = np.nan  # I, II, III, aVR, aVL for 2 s: only aVF is left there
    x[0, 600:700] = np.nan  # I alone for 1 s: rebuilt from II and III
    out, repairs = repair_signal(x, fs, SignalPolicy(fs=fs))
    assert repairs == [
        "blanked:I:2.000-4.000 s:no two valid limb leads", "rebuilt:I:6.000-7.000 s:from II,III",
        "blanked:II:2.000-4.000 s:no two valid limb leads", "blanked:III:2.000-4.000 s:no two valid limb leads",
        "blanked:aVR:2.000-4.000 s:no two valid limb leads", "blanked:aVL:2.000-4.000 s:no two valid limb leads",
    ]
    assert not out[:5, 200:400].any()
    np.testing.assert_array_equal(out[5], clean[5])


def test_a_missing_limb_lead_is_rebuilt_and_the_gap_pieces_use_what_is_there():
    _, fs, clean = _real()[1]
    x = clean.copy()
    x[2] = np.nan  # III has no sample at all
    x[1, 500:600] = np.nan  # II missing for 1 s as well: III there from I and aVF
    out, repairs = repair_signal(x, fs, SignalPolicy(fs=fs))
    assert repairs == [
        "rebuilt:II:5.000-6.000 s:from I,aVF",
        "rebuilt:III:0.000-5.000 s:from I,II", "rebuilt:III:5.000-6.000 s:from I,aVF",
        "rebuilt:III:6.000-10.000 s:from I,II",
    ]
    assert np.abs(out - clean).max() <= 2.5 * STEP_MV


# --- flat (dead) leads ---------------------------------------------------------------------------------------------


@SETTINGS
@given(record=st.integers(0, 22), lead=st.integers(0, 11), level=st.sampled_from([0.0, -0.5, 1.25]))
def test_a_dead_flat_limb_lead_is_rebuilt_a_flat_precordial_one_left(record, lead, level):
    _, fs, clean = _real()[record]
    x = clean.copy()
    x[lead] = level
    out, repairs = repair_signal(x.copy(), fs, SignalPolicy(fs=fs))
    if lead >= 6:  # nothing can tell a flat precordial lead from a signal: left as it is
        assert repairs == []
        np.testing.assert_array_equal(out, x)
        return
    pair = {0: "II,III", 1: "I,III"}.get(lead, "I,II")
    assert repairs == [f"rebuilt:{LIMB_LEADS[lead]}:0.000-{x.shape[1] / fs:.3f} s:from {pair}; lead was flat"]
    assert np.abs(out[lead] - clean[lead]).max() <= 1.5 * STEP_MV + 1e-9
    with pytest.raises(RecordRejected) as info:
        repair_signal(x.copy(), fs, SignalPolicy(fs=fs, missing_lead="reject"))
    assert info.value.reason == "missing_lead" and LIMB_LEADS[lead] in info.value.detail
    zeroed, repairs = repair_signal(x.copy(), fs, SignalPolicy(fs=fs, missing_lead="zero"))
    assert repairs == [f"blanked:{LIMB_LEADS[lead]}:0.000-{x.shape[1] / fs:.3f} s:lead was flat"]
    assert not zeroed[lead].any()


def test_flat_limb_leads_without_varying_evidence_are_left_alone():
    _, fs, clean = _real()[2]
    x = clean.copy()
    x[:6] = 0.25  # every limb lead flat: no two varying leads to contradict them
    out, repairs = repair_signal(x.copy(), fs, SignalPolicy(fs=fs))
    assert repairs == []
    np.testing.assert_array_equal(out, x)


# --- policies and the thresholds for too much missing -------------------------------------------------------------


def test_reject_and_zero_policies():
    _, fs, clean = _real()[4]
    x = clean.copy()
    x[5, 100:200] = np.nan
    x[7] = np.inf
    with pytest.raises(RecordRejected) as info:
        repair_signal(x.copy(), fs, SignalPolicy(fs=fs, missing_lead="reject"))
    assert info.value.reason == "missing_lead"
    assert info.value.detail == "aVF: non-finite 1.000-2.000 s; V2: no finite samples (gaps longer than 20 samples)"
    out, repairs = repair_signal(x.copy(), fs, SignalPolicy(fs=fs, missing_lead="zero"))
    assert repairs == ["blanked:aVF:1.000-2.000 s", "blanked:V2:0.000-10.000 s"]
    assert not out[5, 100:200].any() and not out[7].any()


def test_more_than_max_blanked_of_the_samples_rejects():
    _, fs, clean = _real()[5]
    x = clean.copy()
    x[6:] = np.nan  # all six precordial leads: exactly half of the samples blanked, kept
    out, repairs = repair_signal(x.copy(), fs, SignalPolicy(fs=fs))
    assert [r.split(":")[0] for r in repairs] == ["blanked"] * 6
    np.testing.assert_array_equal(out[:6], clean[:6])
    x[:5, :30] = np.nan  # and 0.3 s of five limb leads, which cannot be rebuilt from aVF alone
    with pytest.raises(RecordRejected) as info:
        repair_signal(x.copy(), fs, SignalPolicy(fs=fs))
    assert info.value.reason == "too_much_missing" and "6150 of 12000 samples" in info.value.detail
    repair_signal(x.copy(), fs, SignalPolicy(fs=fs, max_blanked_fraction=0.6))  # a looser threshold keeps it
    x[:] = np.nan
    with pytest.raises(RecordRejected) as info:
        repair_signal(x, fs, SignalPolicy(fs=fs, max_blanked_fraction=1.0))
    assert info.value.reason == "unusable_signal" and info.value.detail == "all leads missing"


# --- through `meit prep`: the row's repairs and the manifest's counts -----------------------------------------------


def test_prep_records_spans_and_counts_them_by_kind(tmp_path):
    from data_prep.ptbxl import prepare_ptbxl

    raw = make_ptbxl(tmp_path / "raw", 4, fs=100, quirks=False)
    folder = raw.root / "records100" / "00000"
    names = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    damaged = raw.signals["2"].copy()
    damaged[5, 120:170] = np.nan  # aVF, 0.5 s
    damaged[7, 400:500] = np.nan  # V2, 1 s
    write_record(folder, "00002_lr", 100, damaged, names)
    flat = raw.signals["3"].copy()
    flat[0] = 0.0  # a dead lead I
    write_record(folder, "00003_lr", 100, flat, names)
    out = tmp_path / "out"
    manifest = prepare_ptbxl(raw.root, out, source="records100", workers=1, progress=False)
    assert manifest["repaired_records_by_kind"] == {"blanked": 1, "rebuilt": 2}
    assert manifest["repair_spans_by_kind"] == {
        "blanked": {"spans": 1, "seconds": 1.0, "by_lead": {"V2": 1}},
        "rebuilt": {"spans": 2, "seconds": 10.5, "by_lead": {"I": 1, "aVF": 1}},
    }
    assert manifest["config"]["missing_lead"] == "repair" and manifest["config"]["signal_policy_version"] == 3
    import datasets

    rows = {r["id"]: r for split in datasets.load_from_disk(str(out)).values() for r in split.with_format("numpy")}
    assert list(rows["2"]["repairs"]) == ["rebuilt:aVF:1.200-1.700 s:from I,II", "blanked:V2:4.000-5.000 s"]
    assert list(rows["3"]["repairs"]) == ["rebuilt:I:0.000-10.000 s:from II,III; lead was flat"]
    np.testing.assert_allclose(rows["3"]["ecg"], raw.signals["3"], atol=1.5 * STEP_MV + 1e-6)
    assert json.loads((out / "manifest.json").read_text())["repair_spans_by_kind"]["rebuilt"]["spans"] == 2
