"""The PTB-XL raw layout the generator writes: files, schema, patients and folds, determinism, prep."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from meit.errors import ConfigError
from meit.synth import generate_ptbxl_layout
from meit.synth.findings import SCP_COLUMNS
from meit.synth.wfdb_io import PTBXL_LEAD_NAMES
from meit.synth.writer import PTBXL_COLUMNS, TRUTH_COLUMNS

N = 60


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_layout")
    summary = generate_ptbxl_layout(out, N, seed=3, workers=1, progress=False)
    assert summary.n_records == N and summary.n_patients < N
    return out


@pytest.fixture(scope="module")
def db(root) -> pd.DataFrame:
    return pd.read_csv(root / "ptbxl_database.csv", index_col="ecg_id")


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_database_schema_matches_ptbxl(root, db):
    header = (root / "ptbxl_database.csv").read_text().splitlines()[0].split(",")
    assert header == [*PTBXL_COLUMNS, *TRUTH_COLUMNS]
    assert list(db.index) == list(range(1, N + 1))
    assert db["patient_id"].dtype == float and (db["patient_id"] % 1 == 0).all()
    assert set(db["sex"]) <= {0, 1} and db["age"].between(18, 95).all()
    assert db["strat_fold"].between(1, 10).all()
    assert db["report"].str.len().min() > 10
    assert db["heart_rate"].dtype == np.int64
    pd.to_datetime(db["recording_date"], format="%Y-%m-%d %H:%M:%S")


def test_scp_codes_are_real_statements(root, db):
    statements = pd.read_csv(root / "scp_statements.csv", index_col=0)
    assert list(statements.columns) == list(SCP_COLUMNS)
    assert (root / "scp_statements.csv").read_text().startswith(",description,diagnostic,form,rhythm,")
    for text, findings in zip(db["scp_codes"], db["findings"], strict=True):
        codes = ast.literal_eval(text)
        assert codes and set(codes) <= set(statements.index)
        assert all(isinstance(v, float) for v in codes.values())
        assert ("NORM" in codes) == (json.loads(findings) == ["sinus_rhythm"])
    assert {"description", "diagnostic_class"} <= set(statements.columns)
    assert statements.loc["CLBBB", "diagnostic_class"] == "CD" and statements.loc["SR", "rhythm"] == 1.0


def test_patients_span_records_and_never_two_folds(db):
    per_patient = db.groupby("patient_id")
    assert per_patient.size().max() >= 2
    assert (per_patient["strat_fold"].nunique() == 1).all()
    assert db["strat_fold"].nunique() == 10  # every fold used, so train/validation/test are all non-empty
    first_visit = per_patient["recording_date"].apply(lambda s: list(s) == sorted(s))
    assert first_visit.all()


def test_record_files_follow_ptbxl_paths_and_wfdb_conventions(root, db):
    for ecg_id, row in db.iterrows():
        folder = f"{(ecg_id // 1000) * 1000:05d}"
        assert row["filename_hr"] == f"records500/{folder}/{ecg_id:05d}_hr"
        assert row["filename_lr"] == f"records100/{folder}/{ecg_id:05d}_lr"
    row = db.iloc[7]
    for column, fs, samples in (("filename_hr", 500, 5000), ("filename_lr", 100, 1000)):
        rec = wfdb.rdrecord(str(root / row[column]))
        assert rec.fs == fs and rec.sig_len == samples and rec.n_sig == 12
        assert rec.sig_name == list(PTBXL_LEAD_NAMES)
        assert rec.units == ["mV"] * 12 and rec.adc_gain == [1000.0] * 12 and rec.fmt == ["16"] * 12
        assert np.isfinite(rec.p_signal).all()


def test_files_are_byte_identical_to_wfdb_wrsamp(root, db, tmp_path):
    base = root / db.iloc[3]["filename_hr"]
    rec = wfdb.rdrecord(str(base), physical=False)
    wfdb.wrsamp(
        base.name, fs=500, units=["mV"] * 12, sig_name=list(PTBXL_LEAD_NAMES), d_signal=rec.d_signal,
        fmt=["16"] * 12, adc_gain=[1000] * 12, baseline=[0] * 12, write_dir=str(tmp_path),
    )
    for ext in (".hea", ".dat"):
        assert (tmp_path / (base.name + ext)).read_bytes() == base.with_name(base.name + ext).read_bytes()


def test_lead_identities_hold_in_stored_files(root, db):
    for rel in list(db["filename_hr"][:20]) + list(db["filename_lr"][:20]):
        sig = wfdb.rdrecord(str(root / rel)).p_signal.T
        i, ii, iii, avr, avl, avf = sig[:6]
        assert np.abs(iii - (ii - i)).max() < 1e-9
        for lead, exact in ((avr, -(i + ii) / 2), (avl, i - ii / 2), (avf, ii - i / 2)):
            assert np.abs(lead - exact).max() <= 0.0005 + 1e-9  # half a digital unit (0.5 µV)
        assert np.abs(avr + avl + avf).max() < 1e-9


def test_100hz_copy_is_the_anti_aliased_500hz_signal(root, db):
    row = db.iloc[5]
    hr = wfdb.rdrecord(str(root / row["filename_hr"])).p_signal.T
    lr = wfdb.rdrecord(str(root / row["filename_lr"])).p_signal.T
    for k in range(12):
        a, b = hr[k, 2::5][50:-50], lr[k][50:-50]
        assert np.corrcoef(a, b)[0, 1] > 0.9
        assert abs(a.mean() - b.mean()) < 0.02


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path):
    one = generate_ptbxl_layout(tmp_path / "a", 24, seed=9, workers=1, progress=False)
    two = generate_ptbxl_layout(tmp_path / "b", 24, seed=9, workers=2, progress=False)
    assert one.finding_counts == two.finding_counts
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    other = generate_ptbxl_layout(tmp_path / "c", 24, seed=10, workers=1, progress=False)
    assert other.root.exists()
    assert _digests(tmp_path / "a")["ptbxl_database.csv"] != _digests(tmp_path / "c")["ptbxl_database.csv"]


def test_100hz_only_dataset(tmp_path):
    generate_ptbxl_layout(tmp_path, 5, seed=1, fs=100, progress=False)
    db = pd.read_csv(tmp_path / "ptbxl_database.csv")
    assert not (tmp_path / "records500").exists()
    assert (db["filename_hr"] == db["filename_lr"]).all()
    assert wfdb.rdheader(str(tmp_path / db["filename_lr"][0])).fs == 100


@pytest.mark.parametrize(
    "kwargs,match",
    [({"n": 0}, "positive"), ({"n": 5, "fs": 250}, "fs=250"), ({"n": 5, "workers": 0}, "workers"),
     ({"n": 5, "seconds": 100.0}, "seconds")],
)
def test_bad_options(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        generate_ptbxl_layout(tmp_path, progress=False, **kwargs)


def test_meit_prep_ptbxl_reads_everything(root, tmp_path):
    from datasets import load_from_disk

    import data_prep.ptbxl as ptbxl

    for source in ("records500", "records100"):
        out = tmp_path / source
        manifest = ptbxl.prepare_ptbxl(root, out, source=source, report="original", workers=1, progress=False)
        assert (out / "rejected.jsonl").read_text().strip() == ""
        data = load_from_disk(str(out))
        assert sum(len(data[s]) for s in ("train", "validation", "test")) == N
        assert manifest["rejected"] == 0 and manifest["inputs"] == N
        assert manifest["split"]["records_moved_to_keep_patients_together"] == 0
        row = data["train"][0]
        assert np.asarray(row["ecg"]).shape == (12, 5000 if source == "records500" else 1000)
        assert row["report"] and row["heart_rate"] > 0
