"""Tiny raw PTB-XL and MIMIC-IV-ECG folders (real wfdb files + CSVs) with the quirks prep must handle.

Each builder returns a :class:`RawFixture`: what a correct preparation must produce per record
(kept with which repairs, or rejected with which reason) and the signal written, in canonical order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from meit.leads import CANONICAL_LEADS

PTBXL_NAMES = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
MIMIC_NAMES = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
GAIN = 1000.0  # adu per mV, as in PTB-XL: stored values are quantised to 1 µV


@dataclass
class RawFixture:
    root: Path
    expected_reason: dict[str, str | None] = field(default_factory=dict)  # id → reject reason or None
    expected_repairs: dict[str, list[str]] = field(default_factory=dict)  # id → repair prefixes
    signals: dict[str, np.ndarray] = field(default_factory=dict)  # id → (12, T) mV, canonical order
    patients: dict[str, str] = field(default_factory=dict)

    @property
    def kept(self) -> list[str]:
        return [k for k, v in self.expected_reason.items() if v is None]

    @property
    def rejected(self) -> dict[str, str]:
        return {k: v for k, v in self.expected_reason.items() if v is not None}


def synthetic_signal(rng: np.random.Generator, fs: int, seconds: float) -> np.ndarray:
    """A smooth, non-flat (12, T) millivolt signal, quantised to the stored resolution.

    As on a real electrocardiograph, III, aVR, aVL and aVF are computed from I and II (Einthoven,
    Goldberger) and then quantised, so rebuilding a limb lead from two others is exact to that step.
    """
    t = np.arange(round(fs * seconds)) / fs
    rate = rng.uniform(0.8, 1.6)
    beats = np.exp(-(((t * rate) % 1.0) - 0.3) ** 2 / 0.002)
    amps = rng.uniform(0.3, 1.5, size=(12, 1)) * rng.choice([-1.0, 1.0], size=(12, 1))
    wander = 0.05 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6, size=(12, 1)))
    sig = amps * beats + wander
    lead_i, lead_ii = sig[0].copy(), sig[1].copy()
    sig[2], sig[3] = lead_ii - lead_i, -(lead_i + lead_ii) / 2
    sig[4], sig[5] = lead_i - lead_ii / 2, lead_ii - lead_i / 2
    return np.round(sig * GAIN) / GAIN


def write_record(directory: Path, name: str, fs: int, sig: np.ndarray, lead_names: list[str]) -> None:
    """Write ``sig`` (leads, T) in mV as a format-16 WFDB record ``directory/name.hea|.dat``."""
    directory.mkdir(parents=True, exist_ok=True)
    n = sig.shape[0]
    wfdb.wrsamp(
        name, fs=fs, units=["mV"] * n, sig_name=list(lead_names), p_signal=np.ascontiguousarray(sig.T),
        fmt=["16"] * n, adc_gain=[GAIN] * n, baseline=[0] * n, write_dir=str(directory),
    )


def _apply_quirk(quirk: str, rng: np.random.Generator, sig: np.ndarray, names: list[str], fs: int):
    """Mutate the canonical signal / lead names for one quirk; returns (file_sig, file_names, stored)."""
    stored = sig.copy()
    lower = [name.lower() for name in names]
    v2, avl = lower.index("v2"), lower.index("avl")
    file_names = list(names)
    file_sig = sig.copy()
    if quirk == "shuffled":
        order = rng.permutation(12)
        file_sig = sig[order]
        file_names = [names[i].lower() if k % 2 else names[i] for k, i in enumerate(order)]
    elif quirk == "nan_run":
        file_sig[v2, 100:104] = np.nan
        x = np.arange(sig.shape[1])
        stored[v2, 100:104] = np.interp(x[100:104], [99, 104], [sig[v2, 99], sig[v2, 104]])
    elif quirk == "nan_lead":  # a limb lead without samples is rebuilt from I and II
        file_sig[avl, :] = np.nan
        stored[avl, :] = sig[lower.index("i")] - sig[lower.index("ii")] / 2
    elif quirk == "all_nan":
        file_sig[:] = np.nan
    elif quirk == "unknown_lead":
        file_names[11] = "X7"
    elif quirk == "eleven_leads":
        file_sig = sig[:11]
        file_names = names[:11]
    elif quirk == "short":
        file_sig = sig[:, : sig.shape[1] // 2]
    return file_sig, file_names, stored


# quirk → expected (reject reason or None, repair prefixes)
QUIRKS: dict[str, tuple[str | None, list[str]]] = {
    "ok": (None, []),
    "shuffled": (None, []),
    "nan_run": (None, ["interpolated:V2"]),
    "nan_lead": (None, ["rebuilt:aVL:0.000-10.000 s:from I,II"]),
    "missing_dat": ("missing_dat", []),
    "truncated_dat": ("truncated_dat", []),
    "missing_hea": ("missing_hea", []),
    "bad_header": ("unreadable_header", []),
    "unknown_lead": ("unknown_leads", []),
    "eleven_leads": ("wrong_lead_count", []),
    "empty_report": ("empty_report", []),
    "all_nan": ("unusable_signal", []),
    "short": ("too_short", []),
}


def _damage_files(quirk: str, base: Path) -> None:
    if quirk == "missing_dat":
        os.remove(f"{base}.dat")
    elif quirk == "truncated_dat":
        size = os.path.getsize(f"{base}.dat")
        with open(f"{base}.dat", "r+b") as fh:
            fh.truncate(size // 3)
    elif quirk == "missing_hea":
        os.remove(f"{base}.hea")
    elif quirk == "bad_header":
        Path(f"{base}.hea").write_text("this is not a header\n\x00garbage line\n")


def _quirk_list(n: int, quirks: bool) -> list[str]:
    names = list(QUIRKS) if quirks else []
    return (names + ["ok"] * n)[:n] if n >= len(names) else names[:n]


SCP_STATEMENTS = pd.DataFrame(
    {
        "description": ["normal ECG", "sinus rhythm", "left ventricular hypertrophy", "sinus tachycardia",
                        "non-specific ST changes"],
        "diagnostic": [1.0, np.nan, 1.0, np.nan, 1.0],
        "form": [np.nan, np.nan, np.nan, np.nan, 1.0],
        "rhythm": [np.nan, 1.0, np.nan, 1.0, np.nan],
        "diagnostic_class": ["NORM", None, "HYP", None, "STTC"],
    },
    index=pd.Index(["NORM", "SR", "LVH", "STACH", "NDT"], name=None),
)
GERMAN = ["sinusrhythmus normales ekg", "sinustachykardie linkstyp", "sinusrhythmus lvh", "vorhofflimmern"]


def make_ptbxl(
    root: Path, n: int = 20, *, fs: int = 100, seconds: float = 10.0, quirks: bool = True, seed: int = 0,
    records: tuple[str, ...] = ("records100",), extra_columns: bool = True,
) -> RawFixture:
    """A PTB-XL root with ``n`` records; the first ones carry one quirk each (see :data:`QUIRKS`)."""
    rng = np.random.default_rng(seed)
    fx = RawFixture(root=root)
    rows = []
    for i, quirk in enumerate(_quirk_list(n, quirks)):
        ecg_id = i + 1
        rec_id = str(ecg_id)
        patient = 1000 + i // 2  # pairs of records share a patient (and a fold)
        fold = (i // 2) % 10 + 1
        sig = synthetic_signal(rng, fs, seconds)
        file_sig, file_names, stored = _apply_quirk(quirk, rng, sig, PTBXL_NAMES, fs)
        folder = f"{ecg_id // 1000 * 1000:05d}"
        for rec_dir in records:
            suffix, rate = ("lr", 100) if rec_dir == "records100" else ("hr", 500)
            if rate != fs:
                raise ValueError("make_ptbxl writes one rate per call: pass records matching fs")
            directory = root / rec_dir / folder
            write_record(directory, f"{ecg_id:05d}_{suffix}", fs, file_sig, file_names)
            _damage_files(quirk, directory / f"{ecg_id:05d}_{suffix}")
        codes = [{"NORM": 100.0, "SR": 0.0}, {"STACH": 0.0, "NDT": 50.0}, {"LVH": 80.0, "SR": 0.0}][i % 3]
        row = {
            "ecg_id": ecg_id, "patient_id": float(patient), "age": float(40 + i) if i != 3 else np.nan,
            "sex": i % 2, "report": "" if quirk == "empty_report" else GERMAN[i % len(GERMAN)],
            "scp_codes": repr(codes), "strat_fold": fold,
            "filename_lr": f"records100/{folder}/{ecg_id:05d}_lr",
            "filename_hr": f"records500/{folder}/{ecg_id:05d}_hr",
        }
        if extra_columns:
            row["heart_rate"] = float(60 + i)
            row["findings"] = '["normal"]' if i % 3 == 0 else '["lvh"]'
        rows.append(row)
        reason, repairs = QUIRKS[quirk]
        fx.expected_reason[rec_id] = reason
        fx.expected_repairs[rec_id] = repairs
        fx.signals[rec_id] = stored
        fx.patients[rec_id] = str(patient)
    table = pd.DataFrame(rows)
    table = table.sample(frac=1.0, random_state=seed)  # the converter must not rely on row order
    root.mkdir(parents=True, exist_ok=True)
    table.to_csv(root / "ptbxl_database.csv", index=False)
    SCP_STATEMENTS.to_csv(root / "scp_statements.csv")
    return fx


MIMIC_REPORTS = [
    ["Sinus rhythm", "Normal ECG", None, "***"],
    ["Sinus tachycardia", "Left axis deviation", "Abnormal EKG"],
    ["Atrial fibrillation", None, "Nonspecific T wave abnormality", "Abnormal ECG ="],
]


def make_mimic(
    root: Path, n: int = 20, *, fs: int = 100, seconds: float = 10.0, quirks: bool = True, seed: int = 0,
    patients: int | None = None,
) -> RawFixture:
    """A MIMIC-IV-ECG root with ``n`` studies (aVF before aVL in every header, as in the real files)."""
    rng = np.random.default_rng(seed)
    fx = RawFixture(root=root)
    records, measurements = [], []
    n_patients = patients or max(1, n // 2)
    for i, quirk in enumerate(_quirk_list(n, quirks)):
        subject = 10000000 + (i % n_patients)
        study = 50000000 + i
        rel = f"files/p{str(subject)[:4]}/p{subject}/s{study}/{study}"
        sig = synthetic_signal(rng, fs, seconds)
        mimic_sig = sig[[CANONICAL_LEADS.index(name) for name in MIMIC_NAMES]]
        file_sig, file_names, stored = _apply_quirk(quirk, rng, mimic_sig, MIMIC_NAMES, fs)
        # _apply_quirk worked in file order; the stored expectation must be canonical.
        stored = stored[[MIMIC_NAMES.index(name) for name in CANONICAL_LEADS]]
        write_record(root / Path(rel).parent, str(study), fs, file_sig, file_names)
        _damage_files(quirk, root / rel)
        records.append({"subject_id": subject, "study_id": study, "file_name": study,
                        "ecg_time": f"2180-01-{1 + i % 28:02d} 10:00:00", "path": rel})
        parts = MIMIC_REPORTS[i % len(MIMIC_REPORTS)]
        row = {"subject_id": subject, "study_id": study, "cart_id": 6848296,
               "ecg_time": f"2180-01-{1 + i % 28:02d} 10:00:00"}
        for k in range(18):
            value = parts[k] if k < len(parts) else None
            row[f"report_{k}"] = None if quirk == "empty_report" else value
        row.update({"bandwidth": "0.005-150 Hz", "filtering": "60 Hz notch Baseline filter",
                    "rr_interval": 800 + i, "p_onset": 40, "qrs_axis": 30, "t_axis": 40})
        measurements.append(row)
        rec_id = str(study)
        reason, repairs = QUIRKS[quirk]
        fx.expected_reason[rec_id] = reason
        fx.expected_repairs[rec_id] = repairs
        fx.signals[rec_id] = stored
        fx.patients[rec_id] = str(subject)
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records).to_csv(root / "record_list.csv", index=False)
    pd.DataFrame(measurements).sample(frac=1.0, random_state=seed).to_csv(
        root / "machine_measurements.csv", index=False
    )
    return fx
