"""`prepare_mimic_iv_ecg` on a tiny raw MIMIC-IV-ECG folder (aVF before aVL, NaN, broken files)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from data_prep.mimic_iv_ecg import assign_splits, clean_mimic_report, prepare_mimic_iv_ecg, raw_report_fields
from meit.errors import ConfigError, DataError
from tests.raw_fixtures import make_mimic

N = 26


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_mimic(tmp_path_factory.mktemp("mimic_raw"), N, fs=100, patients=13)


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("mimic_out") / "out"
    manifest = prepare_mimic_iv_ecg(raw.root, out, fs=100, workers=1, seed=0, progress=False)
    return out, manifest


def _rows(out: Path) -> dict[str, dict]:
    dd = datasets.load_from_disk(str(out))
    return {str(r["id"]): {**r, "split": s} for s in dd for r in dd[s].with_format("numpy")}


def _rejected(out: Path) -> dict[str, str]:
    return {json.loads(x)["id"]: json.loads(x)["reason"] for x in (out / "rejected.jsonl").read_text().splitlines()}


def test_every_record_accounted_for(raw, prepared):
    out, manifest = prepared
    rows, rejected = _rows(out), _rejected(out)
    assert rejected == raw.rejected
    assert sorted(rows) == sorted(raw.kept)
    assert manifest["inputs"] == N and manifest["rejected"] == len(rejected)


def test_avf_before_avl_is_reordered(raw, prepared):
    out, _ = prepared
    for rec_id, row in _rows(out).items():
        assert row["ecg"].shape == (12, 1000) and np.isfinite(row["ecg"]).all()
        np.testing.assert_allclose(row["ecg"], raw.signals[rec_id], atol=2e-6, err_msg=rec_id)
        got = list(row["repairs"])
        want = raw.expected_repairs[rec_id]
        assert len(got) == len(want) and all(g.startswith(w) for g, w in zip(got, want, strict=True))


def test_reports_cleaned_and_raw_kept(prepared):
    out, _ = prepared
    row = _rows(out)["50000000"]
    assert str(row["report"]) == "sinus rhythm. normal ecg"
    assert json.loads(str(row["report_raw"])) == {"report_0": "Sinus rhythm", "report_1": "Normal ECG",
                                                  "report_3": "***"}
    assert int(row["study_id"]) == 50000000 and str(row["ecg_time"]).startswith("2180-01-01")
    assert int(row["rr_interval"]) == 800  # measurement columns travel along


def test_clean_mimic_report():
    assert clean_mimic_report(["Sinus tachycardia", None, "Abnormal EKG", "***", float("nan")]) == (
        "sinus tachycardia. abnormal ecg")
    assert clean_mimic_report(["*** Critical Test Result: STEMI", "Abnormal ECG ="]) == (
        "critical test result: stemi. abnormal ecg")
    assert clean_mimic_report([None, "", "  "]) == ""
    assert json.loads(raw_report_fields(["a", None, ""], ["report_0", "report_1", "report_2"])) == {"report_0": "a"}


def test_split_by_patient_from_seed(raw, prepared, tmp_path):
    out, manifest = prepared
    rows = _rows(out)
    splits_of: dict[str, set[str]] = {}
    for row in rows.values():
        splits_of.setdefault(str(row["patient_id"]), set()).add(row["split"])
    assert all(len(v) == 1 for v in splits_of.values())
    assert manifest["split"]["seed"] == 0 and manifest["split"]["ratios"] == [0.9, 0.01, 0.09]
    subjects = np.array([10000000 + i for i in range(200)] * 2)
    a = assign_splits(subjects, (0.9, 0.01, 0.09), seed=0)
    assert a == assign_splits(subjects[::-1], (0.9, 0.01, 0.09), seed=0)  # input order does not matter
    assert a != assign_splits(subjects, (0.9, 0.01, 0.09), seed=1)
    counts = pd.Series(a).value_counts().to_dict()
    assert counts == {"train": 180, "test": 18, "validation": 2}
    tiny = assign_splits(np.arange(5), (0.9, 0.01, 0.09), seed=0)
    assert set(tiny.values()) == {"train", "validation", "test"}


def test_output_independent_of_workers(raw, prepared, tmp_path):
    _, manifest = prepared
    m2 = prepare_mimic_iv_ecg(raw.root, tmp_path / "o2", fs=100, workers=2, shard_size=4, progress=False)
    assert m2["content_hash"] == manifest["content_hash"]
    m3 = prepare_mimic_iv_ecg(raw.root, tmp_path / "o3", fs=100, seed=5, progress=False)
    assert m3["content_hash"] != manifest["content_hash"]


def test_bad_inputs(tmp_path, raw):
    with pytest.raises(ConfigError, match="ratios"):
        prepare_mimic_iv_ecg(raw.root, tmp_path / "o", ratios=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="ratios"):
        prepare_mimic_iv_ecg(raw.root, tmp_path / "o", ratios=(0.5, 0.5))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"record_list\.csv"):
        prepare_mimic_iv_ecg(empty, tmp_path / "o")
    pd.DataFrame({"subject_id": [1], "study_id": [2], "path": ["files/x"]}).to_csv(empty / "record_list.csv")
    with pytest.raises(DataError, match=r"machine_measurements\.csv"):
        prepare_mimic_iv_ecg(empty, tmp_path / "o")
    pd.DataFrame({"study_id": [2], "cart_id": [3]}).to_csv(empty / "machine_measurements.csv")
    with pytest.raises(DataError, match="report_0"):
        prepare_mimic_iv_ecg(empty, tmp_path / "o")


def test_record_without_measurements_is_rejected(tmp_path):
    raw = make_mimic(tmp_path / "r", 4, fs=100, quirks=False)
    mm = pd.read_csv(raw.root / "machine_measurements.csv")
    mm[mm["study_id"] != 50000002].to_csv(raw.root / "machine_measurements.csv", index=False)
    m = prepare_mimic_iv_ecg(raw.root, tmp_path / "o", fs=100, progress=False)
    assert _rejected(tmp_path / "o") == {"50000002": "empty_report"}
    assert m["inputs"] == 4


def test_repeated_measurement_rows_are_counted_or_rejected_never_silent(tmp_path):
    raw = make_mimic(tmp_path / "r", 4, fs=100, quirks=False)
    path = raw.root / "machine_measurements.csv"
    mm = pd.read_csv(path)
    same = mm[mm["study_id"] == 50000001]  # an identical repeat: harmless, dropped and counted
    other = mm[mm["study_id"] == 50000002].assign(report_0="Atrial flutter", rr_interval=1)  # which one is right?
    pd.concat([mm, same, other, other]).to_csv(path, index=False)
    out = tmp_path / "o"
    m = prepare_mimic_iv_ecg(raw.root, out, fs=100, progress=False)
    assert m["measurement_duplicates"] == {"identical_rows_dropped": 2, "studies_with_differing_rows": 1,
                                           "records_rejected": 1}
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["id"], r["reason"]) for r in rejected] == [("50000002", "duplicate_measurements")]
    assert rejected[0]["detail"] == ("2 rows for study_id 50000002 in machine_measurements.csv differ in "
                                     "rr_interval, report_0…17")
    assert m["inputs"] == 4 and sum(m["counts"].values()) == 3
    assert str(_rows(out)["50000001"]["report"]) == "sinus tachycardia. left axis deviation. abnormal ecg"


def test_a_record_without_a_path_is_rejected_as_missing_filename(tmp_path):
    raw = make_mimic(tmp_path / "r", 4, fs=100, quirks=False)
    records = pd.read_csv(raw.root / "record_list.csv")
    records.loc[records["study_id"] == 50000001, "path"] = ""
    records.to_csv(raw.root / "record_list.csv", index=False)
    m = prepare_mimic_iv_ecg(raw.root, tmp_path / "o", fs=100, progress=False)
    assert _rejected(tmp_path / "o") == {"50000001": "missing_filename"}
    assert m["inputs"] == 4 and sum(m["counts"].values()) == 3
