"""`prepare_ptbxl` on a tiny raw PTB-XL folder with every quirk (real wfdb files + CSVs)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from data_prep.ptbxl import compose_scp_report, parse_scp_codes, prepare_ptbxl
from meit import __version__
from meit.ecg_signal import resample
from meit.errors import ConfigError, DataError
from meit.leads import CANONICAL_LEADS
from tests.raw_fixtures import make_ptbxl, synthetic_signal, write_record

N = 24


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_ptbxl(tmp_path_factory.mktemp("ptbxl_raw"), N, fs=100)


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("ptbxl_out") / "out"
    manifest = prepare_ptbxl(raw.root, out, source="records100", workers=1, progress=False)
    return out, manifest


def _rows(out: Path) -> dict[str, dict]:
    dd = datasets.load_from_disk(str(out))
    rows = {}
    for split in ("train", "validation", "test"):
        for row in dd[split].with_format("numpy"):
            rows[str(row["id"])] = {**row, "split": split}
    return rows


def _rejected(out: Path) -> dict[str, str]:
    lines = (out / "rejected.jsonl").read_text().splitlines()
    return {json.loads(x)["id"]: json.loads(x)["reason"] for x in lines}


def _tree_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_every_record_is_kept_or_rejected_with_its_reason(raw, prepared):
    out, _ = prepared
    rows, rejected = _rows(out), _rejected(out)
    assert set(rows) | set(rejected) == set(raw.expected_reason)
    assert not set(rows) & set(rejected)
    assert rejected == raw.rejected
    assert sorted(rows) == sorted(raw.kept)


def test_signals_are_canonical_millivolts_and_repairs_recorded(raw, prepared):
    out, _ = prepared
    for rec_id, row in _rows(out).items():
        ecg = row["ecg"]
        assert ecg.dtype == np.float32 and ecg.shape == (12, 1000)
        assert np.isfinite(ecg).all()
        np.testing.assert_allclose(ecg, raw.signals[rec_id], atol=2e-6, err_msg=rec_id)
        repairs = list(row["repairs"])
        expected = raw.expected_repairs[rec_id]
        assert len(repairs) == len(expected), (rec_id, repairs)
        for got, prefix in zip(repairs, expected, strict=True):
            assert got.startswith(prefix)
        assert row["fs"] == 100


def test_splits_follow_strat_fold_and_never_share_a_patient(prepared):
    out, _ = prepared
    rows = _rows(out)
    want = {**dict.fromkeys(range(1, 9), "train"), 9: "validation", 10: "test"}
    patients: dict[str, set[str]] = {}
    for row in rows.values():
        assert row["split"] == want[int(row["strat_fold"])]
        patients.setdefault(str(row["patient_id"]), set()).add(row["split"])
    assert all(len(s) == 1 for s in patients.values())


def test_extra_columns_and_report(raw, prepared):
    out, _ = prepared
    rows = _rows(out)
    row = rows["1"]
    assert str(row["report"]) == "sinusrhythmus normales ekg"
    assert str(row["report_original"]) == "sinusrhythmus normales ekg"
    assert json.loads(str(row["scp_codes"])) == {"NORM": 100.0, "SR": 0.0}
    assert float(row["heart_rate"]) == 60.0 and str(row["findings"]) == '["normal"]'
    assert row["sex"] == 0 and row["age"] == 40.0
    features = datasets.load_from_disk(str(out))["train"].features
    assert features["ecg"] == datasets.Array2D(shape=(12, 1000), dtype="float32")
    assert datasets.load_from_disk(str(out))["train"][0]["age"] is not None


def test_missing_values_become_null_not_nan(prepared):
    out, _ = prepared
    dd = datasets.load_from_disk(str(out))
    all_rows = [r for split in dd.values() for r in split]
    row4 = next(r for r in all_rows if r["id"] == "4")  # age left empty in the table
    assert row4["age"] is None


def test_manifest(prepared):
    out, manifest = prepared
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    dd = datasets.load_from_disk(str(out))
    assert manifest["source"] == "ptbxl"
    assert manifest["counts"] == {s: len(dd[s]) for s in ("train", "validation", "test")}
    assert manifest["rejected"] == len((out / "rejected.jsonl").read_text().splitlines())
    assert manifest["inputs"] == N
    assert manifest["fs"] == 100 and manifest["seconds"] == 10.0 and manifest["samples"] == 1000
    assert manifest["leads"] == list(CANONICAL_LEADS)
    assert manifest["meit_version"] == __version__
    assert manifest["content_hash"].startswith("sha256:")
    assert "strat_fold" in manifest["split"]["rule"] and manifest["split"]["seed"] == 0
    assert {"nan_repair", "missing_lead", "resample", "length"} <= set(manifest["preprocessing"])
    assert not (out / ".work").exists()


def test_output_independent_of_workers_and_reruns(raw, prepared, tmp_path):
    out, manifest = prepared
    other = tmp_path / "two_workers"
    prepare_ptbxl(raw.root, other, source="records100", workers=2, progress=False)
    assert _tree_bytes(other) == _tree_bytes(out)
    small = tmp_path / "small_shards"
    m3 = prepare_ptbxl(raw.root, small, source="records100", workers=2, shard_size=3, progress=False)
    assert m3["content_hash"] == manifest["content_hash"]  # the hash describes rows, not files
    assert _rows(small).keys() == _rows(out).keys()
    again = tmp_path / "again"
    prepare_ptbxl(raw.root, again, source="records100", workers=1, progress=False)
    assert _tree_bytes(again) == _tree_bytes(out)


def test_rerun_on_finished_output(raw, prepared):
    out, manifest = prepared
    before = _tree_bytes(out)
    assert prepare_ptbxl(raw.root, out, source="records100", progress=False) == manifest
    assert _tree_bytes(out) == before
    with pytest.raises(ConfigError, match="overwrite"):
        prepare_ptbxl(raw.root, out, source="records100", max_gap_seconds=0.5, progress=False)


def test_overwrite_and_non_empty_out(raw, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        prepare_ptbxl(raw.root, out, source="records100", limit=3, progress=False)
    (out / "notes.txt").unlink()
    prepare_ptbxl(raw.root, out, source="records100", limit=3, progress=False)
    m = prepare_ptbxl(raw.root, out, source="records100", limit=4, overwrite=True, progress=False)
    assert m["inputs"] == 4


def test_scp_reports_in_english(raw, tmp_path):
    m = prepare_ptbxl(raw.root, tmp_path / "scp", source="records100", report="scp", progress=False)
    rows = _rows(tmp_path / "scp")
    assert str(rows["1"]["report"]) == "sinus rhythm. normal ECG."
    # NDT at likelihood 50 is worded as a probable finding, not stated as fact
    assert str(rows["2"]["report"]) == "sinus tachycardia. probable non-specific ST changes."
    # the record with an empty original report still has SCP codes, so it is kept here
    assert "11" in rows and "empty_report" not in m["rejected_by_reason"]
    # counted over the table's rows (before any signal check), like the cleaning counts
    table = pd.read_csv(raw.root / "ptbxl_database.csv")
    probable = sum(1 for codes in table["scp_codes"] for lik in parse_scp_codes(codes).values() if 50 <= lik < 100)
    assert m["scp_report"]["statements_probable"] == probable > 0
    assert m["config"]["scp_thresholds"] == [50.0, 100.0] and m["config"]["scp_heart_axis"] is True


def test_compose_scp_report_orders_and_skips_unknown():
    statements = {"SR": (0, "sinus rhythm"), "LVH": (1, "left ventricular hypertrophy"),
                  "NORM": (1, "normal ECG"), "LOWT": (2, "low amplitude T-waves.")}
    codes = {"LOWT": 0.0, "NORM": 50.0, "LVH": 100.0, "SR": 0.0, "XYZ": 100.0}
    text = compose_scp_report(codes, statements)
    assert text == "sinus rhythm. left ventricular hypertrophy. probable normal ECG. low amplitude T-waves."
    assert compose_scp_report({"XYZ": 1.0}, statements) == ""
    assert parse_scp_codes("{'NORM': 100.0}") == {"NORM": 100.0}
    assert parse_scp_codes("not a dict") is None


def test_translation_csv(raw, tmp_path):
    csv = tmp_path / "en.csv"
    pd.DataFrame({"ecg_id": [1, 2, 3], "report": ["sinus rhythm. normal ECG.", "sinus tachycardia.", ""]}).to_csv(
        csv, index=False)
    m = prepare_ptbxl(raw.root, tmp_path / "tr", source="records100", report=str(csv), limit=4,
                      progress=False)
    rows, rejected = _rows(tmp_path / "tr"), _rejected(tmp_path / "tr")
    assert str(rows["1"]["report"]) == "sinus rhythm. normal ECG."
    assert str(rows["1"]["report_original"]) == "sinusrhythmus normales ekg"
    assert rejected == {"3": "empty_report", "4": "empty_report"}
    assert m["rejected"] == 2
    details = {json.loads(x)["id"]: json.loads(x)["detail"]
               for x in (tmp_path / "tr" / "rejected.jsonl").read_text().splitlines()}
    assert details == {"3": "empty in the translation file en.csv", "4": "not in the translation file en.csv"}


def test_resampling_from_records500(tmp_path):
    raw = make_ptbxl(tmp_path / "r", 3, fs=500, quirks=False, records=("records500",))
    m = prepare_ptbxl(raw.root, tmp_path / "o", source="records500", fs=100, progress=False)
    assert m["fs"] == 100
    rows = _rows(tmp_path / "o")
    for rec_id, row in rows.items():
        want = resample(raw.signals[rec_id], 500, 100).astype(np.float32)
        assert row["ecg"].shape == (12, 1000)
        np.testing.assert_allclose(row["ecg"], want, atol=1e-5)


def test_missing_lead_reject_policy(raw, tmp_path):
    prepare_ptbxl(raw.root, tmp_path / "o", source="records100", missing_lead="reject", limit=5,
                  progress=False)
    assert _rejected(tmp_path / "o")["4"] == "missing_lead"


def test_short_records_padded_when_allowed(tmp_path):
    root = tmp_path / "r"
    raw = make_ptbxl(root, 2, fs=100, quirks=False)
    sig = synthetic_signal(np.random.default_rng(1), 100, 6.0)
    write_record(root / "records100" / "00000", "00002_lr", 100, sig, list(CANONICAL_LEADS))
    prepare_ptbxl(root, tmp_path / "o", source="records100", min_seconds=5.0, progress=False)
    rows = _rows(tmp_path / "o")
    row = rows["2"]
    assert list(row["repairs"]) == ["padded:end:400 samples"]
    np.testing.assert_allclose(row["ecg"][:, :600], sig, atol=2e-6)
    assert not row["ecg"][:, 600:].any()
    assert raw.kept == ["1", "2"]


def test_bad_roots_raise_data_error(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        prepare_ptbxl(tmp_path / "nope", tmp_path / "o")
    (tmp_path / "r").mkdir()
    with pytest.raises(DataError, match=r"ptbxl_database\.csv"):
        prepare_ptbxl(tmp_path / "r", tmp_path / "o")
    pd.DataFrame({"ecg_id": [1], "patient_id": [1.0]}).to_csv(tmp_path / "r" / "ptbxl_database.csv")
    with pytest.raises(DataError, match="strat_fold"):
        prepare_ptbxl(tmp_path / "r", tmp_path / "o")
    with pytest.raises(ConfigError, match="source"):
        prepare_ptbxl(tmp_path / "r", tmp_path / "o", source="records250")


def test_invalid_fold_is_rejected_not_lost(tmp_path):
    raw = make_ptbxl(tmp_path / "r", 3, fs=100, quirks=False)
    table = pd.read_csv(raw.root / "ptbxl_database.csv")
    table.loc[table["ecg_id"] == 2, "strat_fold"] = np.nan
    table.to_csv(raw.root / "ptbxl_database.csv", index=False)
    m = prepare_ptbxl(raw.root, tmp_path / "o", source="records100", progress=False)
    assert _rejected(tmp_path / "o") == {"2": "invalid_split"}
    assert m["inputs"] == 3 and sum(m["counts"].values()) == 2


def test_synthetic_generator_root_prepares_without_rejects(tmp_path):
    from meit.synth import generate_ptbxl_layout as generate

    root = tmp_path / "synth"
    generate(root, n=12, seed=3, fs=500, seconds=10.0, workers=1, write_lr=True, progress=False)
    m = prepare_ptbxl(root, tmp_path / "o", source="records100", progress=False)
    assert m["rejected"] == 0, (tmp_path / "o" / "rejected.jsonl").read_text()
    columns = datasets.load_from_disk(str(tmp_path / "o"))["train"].column_names
    table = pd.read_csv(root / "ptbxl_database.csv", nrows=0)
    for col in ("findings", "heart_rate"):
        if col in table.columns:
            assert col in columns


def test_each_table_or_header_fault_is_rejected_with_what_is_wrong(tmp_path):
    """Found by `python -m meit.bench faults`: an empty patient_id was kept (as patient 'unknown-<id>'), an
    empty filename_lr was reported as missing_hea, a 1000 Hz header on a 100 Hz record as too_short."""
    raw = make_ptbxl(tmp_path / "r", 6, fs=100, quirks=False)
    table = pd.read_csv(raw.root / "ptbxl_database.csv")
    table.loc[table["ecg_id"] == 2, "patient_id"] = np.nan
    table.loc[table["ecg_id"] == 3, "filename_lr"] = ""
    table.to_csv(raw.root / "ptbxl_database.csv", index=False)
    for ecg_id, rate in ((4, "1000"), (5, "50")):
        hea = raw.root / "records100" / "00000" / f"{ecg_id:05d}_lr.hea"
        lines = hea.read_text().splitlines()
        record = lines[0].split()
        record[2] = rate
        hea.write_text("\n".join([" ".join(record), *lines[1:]]) + "\n")
    out = tmp_path / "o"
    m = prepare_ptbxl(raw.root, out, source="records100", progress=False)
    assert _rejected(out) == {"2": "missing_patient_id", "3": "missing_filename", "4": "wrong_rate",
                              "5": "wrong_rate"}
    details = {json.loads(x)["id"]: json.loads(x)["detail"] for x in (out / "rejected.jsonl").read_text().splitlines()}
    assert details["2"] == "patient_id=empty, expected an integer id"
    assert details["3"] == "filename_lr=empty in ptbxl_database.csv"
    assert "sampling rate 1000 Hz, but every record in records100/ is recorded at 100 Hz" in details["4"]
    assert m["inputs"] == 6 and sum(m["counts"].values()) == 2
    kept = datasets.load_from_disk(str(out))
    assert sorted(str(i) for s in kept for i in kept[s]["id"]) == ["1", "6"]
    assert "sampling_rate" in m["preprocessing"] and "amplitude" in m["preprocessing"]
