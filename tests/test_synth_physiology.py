"""Generated records measured by independent tools: rate, rhythm regularity, QRS width.

The measurements never look at the generator's internals: neurokit2 finds R peaks in lead II of the
stored files, and QRS width comes from the spatial velocity of the median beat of the 8 independent
leads, with beats located by that velocity.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy import signal

from meit.synth import generate_ptbxl_layout

N = 200
FS = 500


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("synth_physio")
    generate_ptbxl_layout(root, N, seed=21, workers=1, write_lr=False, progress=False)
    db = pd.read_csv(root / "ptbxl_database.csv", index_col="ecg_id")
    db["findings"] = db["findings"].map(json.loads)
    return root, db


@pytest.fixture(scope="module")
def signals(dataset) -> dict[int, np.ndarray]:
    root, db = dataset
    return {i: wfdb.rdrecord(str(root / db.loc[i, "filename_hr"])).p_signal.T for i in db.index}


@pytest.fixture(scope="module")
def lead_ii_rr(signals) -> dict[int, np.ndarray]:
    """RR intervals (s) from neurokit2's R-peak detector on lead II.

    Peaks in the first and last 100 ms are dropped: there the detector fires on partial beats and
    filter edges, whatever the signal.
    """
    out = {}
    edge = int(0.1 * FS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, sig in signals.items():
            cleaned = nk.ecg_clean(sig[1], sampling_rate=FS)
            _, info = nk.ecg_peaks(cleaned, sampling_rate=FS)
            peaks = np.asarray(info["ECG_R_Peaks"])
            peaks = peaks[(peaks >= edge) & (peaks < sig.shape[1] - edge)]
            out[i] = np.diff(peaks) / FS
    return out


def irregularity(rr: np.ndarray) -> float:
    """Median successive RR difference over the median RR: robust to one missed or extra beat."""
    if len(rr) < 3:
        return float("inf")
    return float(np.median(np.abs(np.diff(rr))) / np.median(rr))


def qrs_width_ms(sig: np.ndarray, fs: int = FS, fraction: float = 0.2) -> float:
    """QRS duration of the median beat: span where the spatial velocity exceeds ``fraction`` of its peak."""
    b, a = signal.butter(2, [0.5, 40.0], btype="band", fs=fs)
    x = signal.filtfilt(b, a, sig[[0, 1, 6, 7, 8, 9, 10, 11]], axis=1)
    velocity = np.sqrt((np.diff(x, axis=1) ** 2).sum(axis=0))
    peaks, _ = signal.find_peaks(
        velocity, height=0.3 * np.percentile(velocity, 99.5), distance=int(0.25 * fs)
    )
    half = int(0.15 * fs)
    peaks = peaks[(peaks > half) & (peaks < x.shape[1] - half)]
    template = np.median(np.stack([x[:, p - half : p + half] for p in peaks]), axis=0)
    tv = np.sqrt((np.diff(template, axis=1) ** 2).sum(axis=0))
    above = np.flatnonzero(tv > fraction * tv.max())
    return 1000.0 * (above[-1] - above[0]) / fs


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    diff = positive[:, None] - negative[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_dataset_has_every_kind_of_record(dataset):
    _, db = dataset
    flat = [f for fs in db["findings"] for f in fs]
    for name in ("sinus_rhythm", "afib", "lbbb", "rbbb", "pvc", "avb1", "lad"):
        assert name in flat, name


def test_lead_ii_detector_recovers_heart_rate_of_sinus_records(dataset, lead_ii_rr):
    _, db = dataset
    sinus = db[db["rhythm"] != "afib"]
    errors = np.array([abs(60.0 / lead_ii_rr[i].mean() - db.loc[i, "heart_rate"]) for i in sinus.index])
    assert len(sinus) > 100
    assert (errors <= 3.0).mean() >= 0.95, np.sort(errors)[-10:]


def test_af_is_irregular_and_sinus_is_regular(dataset, lead_ii_rr):
    _, db = dataset
    score = {i: irregularity(lead_ii_rr[i]) for i in db.index}
    is_af = db["rhythm"] == "afib"
    regular = ~is_af & (db["n_pvc"] == 0)
    af = np.array([score[i] for i in db.index[is_af]])
    sinus = np.array([score[i] for i in db.index[regular]])
    assert len(af) >= 10 and len(sinus) >= 100
    assert (af > 0.06).mean() >= 0.9
    assert (sinus < 0.05).mean() >= 0.95
    assert _auc(af, sinus) >= 0.97
    # and exactly, on the generator's own beat times
    def truth_cv(i: int) -> float:
        rr = np.diff(json.loads(db.loc[i, "qrs_onsets_s"]))
        return float(rr.std() / rr.mean())

    assert min(truth_cv(i) for i in db.index[is_af]) > 0.08
    assert max(truth_cv(i) for i in db.index[regular]) < 0.05


def test_measured_qrs_width_separates_bundle_branch_blocks(dataset, signals):
    _, db = dataset
    wide = db["findings"].map(lambda f: "lbbb" in f or "rbbb" in f)
    widths = pd.Series({i: qrs_width_ms(signals[i]) for i in db.index})
    assert wide.sum() >= 10
    assert _auc(widths[wide].to_numpy(), widths[~wide].to_numpy()) >= 0.97
    accuracy = ((widths >= 110.0) == wide).mean()
    assert accuracy >= 0.95, widths[(widths >= 110.0) != wide]
    assert (db.loc[wide, "qrs_ms"] >= 120).all() and (db.loc[~wide, "qrs_ms"] < 120).all()
