"""No bad input accepted silently: header units, and `.npy` arrays read like wfdb records (shape, units, gaps)."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
import wfdb
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meit.errors import ConfigError, DataError
from meit.leads import CANONICAL_LEADS
from meit.records import (
    MAX_LEAD_MEDIAN_MV,
    MAX_SAMPLE_MV,
    RecordRejected,
    SignalPolicy,
    check_amplitude,
    millivolts_per_unit,
    read_ecg,
    read_ecg_file,
    read_signal,
    repair_signal,
)
from tests.raw_fixtures import synthetic_signal, write_record

REAL = Path(__file__).parent / "data" / "ptbxl_real"
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# spelling -> millivolts per unit
SPELLINGS = {
    "mV": 1.0, "MV": 1.0, "mv": 1.0, "millivolt": 1.0, "Millivolts": 1.0,
    "uV": 1e-3, "UV": 1e-3, "µV": 1e-3, "μV": 1e-3, "microvolts": 1e-3,
    "V": 1e3, "v": 1e3, "Volt": 1e3, "nV": 1e-6,
}


def _real(name: str = "00001_lr") -> tuple[np.ndarray, int]:
    sig, _ = read_signal(str(REAL / "records100" / "00000" / name), SignalPolicy(fs=100))
    return np.round(sig.astype(np.float64) * 1000) / 1000, 100


def _write_units(directory: Path, name: str, sig_mv: np.ndarray, units: list[str], fmt: str = "16") -> None:
    """A record whose header states ``units``; the digital values are the same 1 µV grid whatever the unit."""
    per = [millivolts_per_unit(u) or 1.0 for u in units]
    wfdb.wrsamp(name, fs=100, units=units, sig_name=list(CANONICAL_LEADS),
                p_signal=np.ascontiguousarray((sig_mv / np.array(per)[:, None]).T), fmt=[fmt] * 12,
                adc_gain=[1000.0 * p for p in per], baseline=[0] * 12, write_dir=str(directory))


# --- header units ---------------------------------------------------------------------------------------------


@SETTINGS
@given(spelling=st.sampled_from(sorted(SPELLINGS)), fmt=st.sampled_from(["16", "212"]))
def test_every_known_spelling_is_converted_to_millivolts(spelling, fmt):
    sig = synthetic_signal(np.random.default_rng(1), 100, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        _write_units(Path(tmp), "r", sig, [spelling] * 12, fmt=fmt)
        ecg, _ = read_signal(str(Path(tmp) / "r"), SignalPolicy(fs=100, seconds=1.0))
    np.testing.assert_allclose(ecg, sig, atol=1e-6 if fmt == "16" else 2e-3)


@SETTINGS
@given(unit=st.text(string.ascii_letters, min_size=1, max_size=6), lead=st.integers(0, 11))
def test_unknown_units_reject_the_record_naming_lead_and_unit(unit, lead):
    assume(millivolts_per_unit(unit) is None)
    sig = synthetic_signal(np.random.default_rng(2), 100, 1.0)
    units = ["mV"] * 12
    units[lead] = unit
    with tempfile.TemporaryDirectory() as tmp:
        _write_units(Path(tmp), "r", sig, units)
        with pytest.raises(RecordRejected) as info:
            read_signal(str(Path(tmp) / "r"), SignalPolicy(fs=100, seconds=1.0))
        assert info.value.reason == "unknown_units"
        assert f"units {unit!r} for {CANONICAL_LEADS[lead]};" in info.value.detail
        with pytest.raises(DataError, match=f"r.hea: units {unit!r}"):  # a single record: a DataError naming both
            read_ecg_file(Path(tmp) / "r")


def test_micro_sign_in_latin1_and_utf8_headers(tmp_path):
    sig = synthetic_signal(np.random.default_rng(3), 100, 1.0)
    _write_units(tmp_path, "utf8", sig, ["µV"] * 12)  # wfdb writes UTF-8; wfdb's own parser reads this as "V"
    hea = (tmp_path / "utf8.hea").read_bytes()
    assert "µV".encode() in hea
    ecg, _ = read_signal(str(tmp_path / "utf8"), SignalPolicy(fs=100, seconds=1.0))
    np.testing.assert_allclose(ecg, sig, atol=1e-6)
    (tmp_path / "utf8.dat").rename(tmp_path / "latin.dat")
    (tmp_path / "latin.hea").write_bytes(hea.replace("µV".encode(), "µV".encode("latin-1"))
                                         .replace(b"utf8", b"latin"))
    ecg, _ = read_signal(str(tmp_path / "latin"), SignalPolicy(fs=100, seconds=1.0))
    np.testing.assert_allclose(ecg, sig, atol=1e-6)


def test_frank_leads_in_other_units_do_not_matter(tmp_path):
    sig = synthetic_signal(np.random.default_rng(4), 100, 1.0)
    names = [*CANONICAL_LEADS, "vx"]
    wfdb.wrsamp("r", fs=100, units=["mV"] * 12 + ["NU"], sig_name=names,
                p_signal=np.ascontiguousarray(np.vstack([sig, sig[:1]]).T), fmt=["16"] * 13,
                adc_gain=[1000.0] * 13, baseline=[0] * 13, write_dir=str(tmp_path))
    ecg, repairs = read_signal(str(tmp_path / "r"), SignalPolicy(fs=100, seconds=1.0))
    assert repairs == ["dropped_leads:vx"]
    np.testing.assert_allclose(ecg, sig, atol=1e-6)


# --- .npy arrays -------------------------------------------------------------------------------------------------

BLOCK = st.tuples(st.integers(0, 11), st.floats(0, 1), st.floats(0.005, 2.0), st.just(np.nan))  # wfdb: NaN only


@SETTINGS
@given(blocks=st.lists(BLOCK, max_size=5), record=st.sampled_from(["00001_lr", "00087_lr", "00222_lr"]),
       leads_last=st.booleans())
def test_npy_is_repaired_exactly_like_the_same_wfdb_record(blocks, record, leads_last):
    sig, fs = _real(record)
    for lead, where, seconds, fill in blocks:
        n = max(1, round(seconds * fs))
        start = int(where * (sig.shape[1] - n))
        sig[lead, start:start + n] = fill
    with tempfile.TemporaryDirectory() as tmp:
        write_record(Path(tmp), "r", fs, sig, list(CANONICAL_LEADS))
        np.save(Path(tmp) / "r.npy", sig.T if leads_last else sig)
        try:
            want, want_fs, want_repairs = read_ecg(Path(tmp) / "r")
        except DataError as err:
            assert "too_much_missing" in str(err)
            with pytest.raises(DataError, match="too_much_missing"):
                read_ecg(Path(tmp) / "r.npy", fs)
            return
        got, got_fs, got_repairs = read_ecg(Path(tmp) / "r.npy", fs)
    assert (got_fs, got_repairs) == (want_fs, want_repairs)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(factor=st.one_of(st.floats(1e3, 1e5), st.floats(0.2, 5.0), st.floats(1e-6, 1e-3)))
def test_npy_amplitudes_must_be_millivolts(factor):
    sig, fs = _real("00164_lr")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scaled.npy"
        np.save(path, sig * factor)
        if 0.2 <= factor <= 5:
            got, _, repairs = read_ecg(path, fs)
            np.testing.assert_allclose(got, sig * factor, rtol=1e-6)
            assert repairs == []
        elif factor > 5:
            with pytest.raises(DataError, match=r"scaled\.npy: median absolute amplitude is .* divide by 1000"):
                read_ecg(path, fs)
        else:
            with pytest.raises(DataError, match=r"scaled\.npy: largest absolute amplitude is .* multiply by 1000"):
                read_ecg(path, fs)


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((12, 12)), "ambiguous"),
    (np.zeros((3, 500)), r"got shape \(3, 500\)"),
    (np.zeros((12, 500, 1)), r"got shape \(12, 500, 1\)"),
    (np.zeros((12, 500), dtype=bool), "dtype bool"),
    (np.zeros((12, 500), dtype=complex), "dtype complex128"),
    (np.full((12, 500), np.nan), "no finite sample"),
])
def test_npy_shapes_and_types_refused(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=message) as info:
        read_ecg_file(path, 100)
    assert str(path) in str(info.value)


def test_npy_other_refusals(tmp_path):
    sig, fs = _real()
    path = tmp_path / "a.npy"
    np.save(path, sig)
    with pytest.raises(DataError, match="pass --fs"):
        read_ecg_file(path)
    with pytest.raises(ConfigError, match="--fs"):
        read_ecg_file(path, 0)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy: cannot be read"):
        read_ecg_file(tmp_path / "obj.npy", fs)
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match=r"junk\.npy: cannot be read"):
        read_ecg_file(tmp_path / "junk.npy", fs)
    flat = sig.copy()
    flat[:] = 0.5
    flat[0, 0] = 0.6  # only one lead varies, and barely: kept, but leads II..V6 stay flat
    np.save(tmp_path / "flat.npy", flat)
    got, _ = read_ecg_file(tmp_path / "flat.npy", fs)
    assert got.shape == (12, 1000)


def test_npy_long_gaps_are_rebuilt_and_blanked_not_zero_filled(tmp_path):
    sig, fs = _real("00008_lr")
    gapped = sig.copy()
    gapped[5, 200:260] = np.nan  # aVF 0.6 s
    gapped[9, 500:800] = np.inf  # V4 3 s
    gapped[1, 10:12] = np.nan  # II, short
    np.save(tmp_path / "g.npy", gapped.astype(np.float32))
    got, fs_out, repairs = read_ecg(tmp_path / "g.npy", fs)
    assert fs_out == fs
    assert repairs == ["interpolated:II:2 samples", "rebuilt:aVF:2.000-2.600 s:from I,II",
                       "blanked:V4:5.000-8.000 s"]
    assert np.abs(got[5] - sig[5]).max() < 2e-3 and not got[9, 500:800].any()
    np.testing.assert_allclose(got[9, :500], sig[9, :500], atol=1e-6)


# --- headers that contradict themselves or the source, scales no ECG has (issue 19's fault-injection finds) ---------


def _header_lines(base: Path) -> list[str]:
    return Path(f"{base}.hea").read_text().splitlines()


def _write_header(base: Path, lines: list[str]) -> None:
    Path(f"{base}.hea").write_text("\n".join(lines) + "\n")


def _record(directory: Path, name: str = "r", fs: int = 100) -> tuple[Path, np.ndarray]:
    sig, _ = _real()
    write_record(directory, name, fs, sig, list(CANONICAL_LEADS))
    return directory / name, sig


@pytest.mark.parametrize("declared", ["13", "11", "24", "0", "-1"])
def test_a_signal_count_that_disagrees_with_the_signal_lines_is_a_typed_reject(tmp_path, declared):
    """13 declared over 12 lines was an IndexError in read_signal; 11 was reported as a wrong lead count."""
    base, _ = _record(tmp_path)
    lines = _header_lines(base)
    record = lines[0].split()
    record[1] = declared
    _write_header(base, [" ".join(record), *lines[1:]])
    with pytest.raises(RecordRejected) as info:
        read_signal(str(base), SignalPolicy(fs=100))
    assert info.value.reason == "inconsistent_header", info.value
    assert f"{base}.hea" in info.value.detail
    assert f"declares {declared} signals" in info.value.detail and "12 signal lines" in info.value.detail
    with pytest.raises(DataError, match=r"declares .* signals"):  # meit generate's reader: the same, typed
        read_ecg(f"{base}.hea")


@pytest.mark.parametrize("leads", [(0,), (5, 9), tuple(range(12))])
@pytest.mark.parametrize("gain", ["0", "0(0)/mV", "0.0/mV"])
def test_a_zero_gain_is_uncalibrated_not_read_at_200(tmp_path, leads, gain):
    """WFDB reads gain 0 as 200 adu/mV; for a record stored at 1000 that is a 5× too large signal."""
    base, _ = _record(tmp_path)
    lines = _header_lines(base)
    for lead in leads:
        fields = lines[1 + lead].split()
        lines[1 + lead] = " ".join([*fields[:2], gain, *fields[3:]])
    _write_header(base, lines)
    with pytest.raises(RecordRejected) as info:
        read_signal(str(base), SignalPolicy(fs=100))
    assert info.value.reason == "uncalibrated"
    assert f"for {', '.join(CANONICAL_LEADS[i] for i in leads)};" in info.value.detail
    with pytest.raises(DataError, match="uncalibrated"):
        read_ecg(base)


def test_microvolts_labelled_millivolts_are_rejected_naming_the_scale(tmp_path):
    sig, _ = _real()
    wfdb.wrsamp("uv", fs=100, units=["mV"] * 12, sig_name=list(CANONICAL_LEADS),
                d_signal=np.round(sig * 1000).astype(np.int32).T.copy(), fmt=["16"] * 12, adc_gain=[1.0] * 12,
                baseline=[0] * 12, write_dir=str(tmp_path))
    with pytest.raises(RecordRejected) as info:
        read_signal(str(tmp_path / "uv"), SignalPolicy(fs=100))
    assert info.value.reason == "implausible_amplitude"
    assert "every lead" in info.value.detail and "microvolts" in info.value.detail
    with pytest.raises(DataError, match="implausible_amplitude"):
        read_ecg(tmp_path / "uv")


def test_one_lead_at_an_impossible_scale_rejects_and_names_it(tmp_path):
    sig, fs = _real()
    sig[8] *= 1000.0  # V3 only
    with pytest.raises(RecordRejected) as info:
        repair_signal(sig.copy(), fs, SignalPolicy(fs=fs))
    assert info.value.reason == "implausible_amplitude" and "1 of 12 leads (V3 " in info.value.detail
    np.save(tmp_path / "v3.npy", sig)  # the whole array's median is a normal one: only the per-lead check sees it
    with pytest.raises(DataError, match=r"v3\.npy: implausible_amplitude: .*\(V3 "):
        read_ecg(tmp_path / "v3.npy", fs)


def test_absurd_samples_are_missing_samples_repaired_and_recorded(tmp_path):
    """A block of 10^5 mV was stored as it was, in wfdb records and arrays alike; now it is a gap."""
    sig, fs = _real("00008_lr")
    bad = sig.copy()
    bad[4, 300:360] = 2.0e5  # aVL 0.6 s: rebuilt from I and II
    bad[7, 100:130] = -1.5e5  # V2 0.3 s: blanked
    bad[10, 50:53] = 3.0e5  # V5 3 samples: interpolated
    expected = ["out_of_range:aVL:60 samples beyond ±100 mV", "rebuilt:aVL:3.000-3.600 s:from I,II",
                "out_of_range:V2:30 samples beyond ±100 mV", "blanked:V2:1.000-1.300 s",
                "out_of_range:V5:3 samples beyond ±100 mV", "interpolated:V5:3 samples"]
    wfdb.wrsamp("huge", fs=fs, units=["mV"] * 12, sig_name=list(CANONICAL_LEADS),
                d_signal=np.round(bad * 1000).astype(np.int64).T.copy(), fmt=["32"] * 12, adc_gain=[1000.0] * 12,
                baseline=[0] * 12, write_dir=str(tmp_path))
    np.save(tmp_path / "huge.npy", bad)
    wfdb_read = read_signal(str(tmp_path / "huge"), SignalPolicy(fs=fs))
    for got, repairs in (wfdb_read, read_ecg(tmp_path / "huge.npy", fs)[::2]):
        assert repairs == expected
        assert np.abs(got).max() < 20 and not got[7, 100:130].any()
        untouched = [i for i in range(12) if i not in (4, 7, 10)]
        np.testing.assert_allclose(got[untouched], sig[untouched], atol=1e-6)


@SETTINGS
@given(value=st.floats(101.0, 1e300), sign=st.sampled_from([-1.0, 1.0]),
       lead=st.integers(0, 11), start=st.integers(0, 990), n=st.integers(1, 10))
def test_no_sample_beyond_the_limit_is_ever_kept(value, sign, lead, start, n):
    sig, fs = _real()
    bad = sig.copy()
    bad[lead, start:start + n] = sign * value
    got, repairs = repair_signal(bad, fs, SignalPolicy(fs=fs))
    assert np.abs(got).max() <= MAX_SAMPLE_MV
    assert repairs[0] == f"out_of_range:{CANONICAL_LEADS[lead]}:{n} samples beyond ±100 mV"


def test_real_records_pass_the_amplitude_limits_untouched():
    for hea in sorted(REAL.glob("records*/*/*.hea")):
        sig, _ = read_signal(str(hea.with_suffix("")), SignalPolicy(fs=100 if "records100" in hea.parts else 500))
        assert check_amplitude(sig.astype(np.float64)) == {}
        assert np.median(np.abs(sig), axis=1).max() < MAX_LEAD_MEDIAN_MV / 10


@pytest.mark.parametrize("rate", ["50", "200", "1000", "500"])
def test_a_header_rate_other_than_the_folders_is_rejected_as_wrong_rate(tmp_path, rate):
    """A 1000 Hz header on a 100 Hz record was rejected as too_short (1 s); 50 Hz was stretched and kept."""
    base, _ = _record(tmp_path / "records100" / "00000", "00001_lr")
    lines = _header_lines(base)
    record = lines[0].split()
    record[2] = rate
    _write_header(base, [" ".join(record), *lines[1:]])
    policy = SignalPolicy(fs=100, folder_rates=(("records100", 100), ("records500", 500)))
    with pytest.raises(RecordRejected) as info:
        read_signal(str(base), policy)
    assert info.value.reason == "wrong_rate"
    assert f"sampling rate {rate} Hz" in info.value.detail
    assert "records100/ is recorded at 100 Hz" in info.value.detail
    # without a known rate (meit generate's reader) only what the length shows can be said
    if rate == "1000":
        with pytest.raises(RecordRejected, match=r"too_short: 1000 samples at 1000 Hz = 1\.000 s"):
            read_signal(str(base), SignalPolicy(fs=100))


def test_folder_rates_are_validated():
    with pytest.raises(ConfigError, match="folder_rates"):
        SignalPolicy(fs=100, folder_rates=(("records100", 0),))
    policy = SignalPolicy(fs=100, folder_rates=(("records100", 100), ("records500", 500)))
    assert policy.folder_rate("/data/records500/x/records100/00000/00001_lr") == ("records100", 100)
    assert policy.folder_rate("/data/other/00001") is None
