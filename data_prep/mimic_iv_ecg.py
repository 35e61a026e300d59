"""MIMIC-IV-ECG (PhysioNet) → prepared dataset.

Reports are the machine statements ``report_0…17`` cleaned the way MEIT did, with the raw fields kept
alongside. There are no official folds: patients (``subject_id``) are shuffled with the seed and cut
by the ratios, so no patient ever appears in two splits and the same seed gives the same split.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_prep.sources import PrepSource
from meit.errors import ConfigError, DataError

if TYPE_CHECKING:  # imported where used: `meit --help` imports this module (see data_prep.sources)
    import numpy as np
    import pandas as pd

    from data_prep.items import ItemTable

log = logging.getLogger(__name__)

REPORT_FIELDS: tuple[str, ...] = tuple(f"report_{k}" for k in range(18))
DEFAULT_RATIOS: tuple[float, float, float] = (0.90, 0.01, 0.09)
_ID_COLUMNS = frozenset({"subject_id", "study_id", "ecg_time", "file_name", "path"})
_RESERVED = frozenset({"id", "patient_id", "ecg", "fs", "report", "repairs", "study_id", "ecg_time", "report_raw"})
_JUNK = re.compile(r"\*+|=")
_EKG = re.compile(r"ekg", re.IGNORECASE)
_CSV_CHUNK = 100_000


def clean_mimic_report(parts: list[object]) -> str:
    """MEIT's cleaning: non-empty statements joined with ". ", EKG → ECG, no ``***`` / ``=``, lowercase."""
    from data_prep.tables import clean_text

    texts = []
    for part in parts:
        text = clean_text(_JUNK.sub(" ", clean_text(part))).strip(" .")
        if text:
            texts.append(text)
    joined = _EKG.sub("ECG", ". ".join(texts))
    return joined.lower()


def raw_report_fields(parts: list[object], names: list[str]) -> str:
    """The non-empty raw ``report_k`` fields as a JSON object (kept for audit and other cleanings)."""
    from data_prep.tables import clean_text

    kept = {name: str(part) for name, part in zip(names, parts, strict=True) if clean_text(part)}
    return json.dumps(kept, ensure_ascii=False)


def assign_splits(subjects: np.ndarray, ratios: tuple[float, float, float], seed: int) -> dict[int, str]:
    """Shuffle the sorted unique patients with ``seed`` and cut by ``ratios``.

    A split with a positive ratio gets at least one patient when there are enough patients, so
    tiny datasets still have a validation set.
    """
    import numpy as np

    from data_prep.writer import SPLITS

    unique = np.unique(subjects)
    order = np.random.default_rng(seed).permutation(len(unique))
    n = len(unique)
    counts = [round(r * n) for r in ratios]
    positive = [r > 0 for r in ratios]
    if n >= sum(positive):
        for k in (1, 2):
            if positive[k] and counts[k] == 0:
                counts[k] = 1
    counts[1] = min(counts[1], n)
    counts[2] = min(counts[2], n - counts[1])
    counts[0] = n - counts[1] - counts[2]
    labels = np.repeat(np.array(SPLITS, dtype=object), counts)
    return {int(unique[i]): str(labels[pos]) for pos, i in enumerate(order)}


def _check_ratios(ratios: tuple[float, ...]) -> tuple[float, float, float]:
    import numpy as np

    if len(ratios) != 3 or any(not np.isfinite(r) or r < 0 for r in ratios):
        raise ConfigError(f"ratios: expected three non-negative fractions (train, validation, test), got {ratios}")
    if abs(sum(ratios) - 1.0) > 1e-6 or ratios[0] <= 0:
        raise ConfigError(f"ratios: expected fractions summing to 1 with train > 0, got {ratios}")
    return (float(ratios[0]), float(ratios[1]), float(ratios[2]))


def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as arrow-backed strings: tables of ~800k rows stay a few hundred MB."""
    from data_prep.tables import text_or_none

    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(text_or_none).astype("string[pyarrow]")
    return frame


def _duplicates(table: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, int, dict[int, str]]:
    """One row per study_id: identical repeated rows dropped (counted); differing ones named for rejection.

    Returns the table, the number of identical rows dropped and, per study_id with differing rows,
    the reject detail (which columns differ). Keeping either of two differing reports would be a guess.
    """
    identical = table.duplicated(keep="first")
    dropped = int(identical.sum())
    if dropped:
        table = table[~identical]
    repeated = table["study_id"].duplicated(keep=False)
    conflicts: dict[int, str] = {}
    if repeated.any():
        for study, group in table[repeated].groupby("study_id", sort=True):
            differ = [c for c in group.columns
                      if c not in ("study_id", "report") and group[c].nunique(dropna=False) > 1]
            named = ", ".join("report_0…17" if c == "report_raw" else c for c in differ)
            conflicts[int(study)] = f"{len(group)} rows for study_id {study} in {path.name} differ in {named}"
        table = table.drop_duplicates("study_id", keep="first")
    return table, dropped, conflicts


def _read_measurements(
    path: Path, wanted: set[int] | None
) -> tuple[pd.DataFrame, dict[str, str], int, dict[int, str]]:
    """study_id → cleaned report, raw fields and the other measurement columns, read in chunks.

    Also returns the number of identical repeated rows dropped and the study_ids whose rows differ
    (see :func:`_duplicates`).
    """
    import pandas as pd

    from data_prep.tables import column_feature, read_table

    if not path.is_file():
        raise DataError(f"{path}: file not found (expected MIMIC-IV-ECG machine measurements)")
    header = read_table(path, ("study_id",), nrows=0).columns
    if not any(c in REPORT_FIELDS for c in header):
        raise DataError(f"{path}: no report_0 … report_17 columns; found {list(header)}")
    fields = [c for c in REPORT_FIELDS if c in header]
    parts: list[pd.DataFrame] = []
    try:
        reader = pd.read_csv(path, chunksize=_CSV_CHUNK, low_memory=False, dtype=dict.fromkeys(fields, object))
        for chunk in reader:
            if wanted is not None:
                chunk = chunk[chunk["study_id"].isin(wanted)]
            values = chunk[fields].to_numpy().tolist()
            reduced = chunk.drop(columns=fields + [c for c in ("subject_id", "ecg_time") if c in chunk.columns])
            reduced = reduced.assign(
                report=[clean_mimic_report(v) for v in values],
                report_raw=[raw_report_fields(v, fields) for v in values],
            )
            parts.append(_compact(reduced))
            del chunk, values
    except Exception as err:
        raise DataError(f"{path}: cannot be read as CSV ({type(err).__name__}: {err})") from None
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["study_id", "report"])
    del parts
    table, dropped, conflicts = _duplicates(table, path)
    table = _compact(table)
    extras = [c for c in table.columns if c not in {"study_id", "report", "report_raw"} and c not in _RESERVED]
    kinds = {c: column_feature(table[c])[0] for c in extras}
    return table, kinds, dropped, conflicts


def _read_record_list(path: Path, limit: int | None) -> pd.DataFrame:
    import pandas as pd

    from data_prep.tables import read_table

    header = read_table(path, ("subject_id", "study_id", "path"), nrows=0).columns
    usecols = [c for c in ("subject_id", "study_id", "path", "ecg_time") if c in header]
    records = read_table(path, (), usecols=usecols, dtype={"path": object, "ecg_time": object})
    bad = records[pd.to_numeric(records["study_id"], errors="coerce").isna()
                  | pd.to_numeric(records["subject_id"], errors="coerce").isna()]
    if len(bad):
        raise DataError(f"{path}: row {bad.index[0] + 2} has a non-numeric subject_id/study_id")
    records = records.astype({"subject_id": "int64", "study_id": "int64"})
    records = records.sort_values("study_id", kind="stable").reset_index(drop=True)
    if limit is not None:
        records = records.head(limit)
    if "ecg_time" not in records.columns:
        records["ecg_time"] = None
    return _compact(records)


def _item_table(
    root: Path, ratios: tuple[float, float, float], seed: int, limit: int | None
) -> tuple[ItemTable, dict[str, str], dict[str, int], list[dict], dict[str, int]]:
    """The input records as an ItemTable, intermediates freed before the signals are read.

    Also returns the records rejected from the tables alone (differing measurement rows) and the
    manifest's account of repeated measurement rows.
    """
    import pandas as pd

    from data_prep.items import ItemTable
    from data_prep.writer import SPLITS

    records = _read_record_list(root / "record_list.csv", limit)
    wanted = set(records["study_id"].tolist()) if limit is not None else None
    measurements, kinds, identical, conflicts = _read_measurements(root / "machine_measurements.csv", wanted)
    measurements = measurements.astype({"study_id": "int64"})
    merged = records.merge(measurements, on="study_id", how="left", sort=False)
    del records, measurements
    split_of = assign_splits(merged["subject_id"].to_numpy(), ratios, seed)  # rejected records included
    conflicting = merged["study_id"].isin(list(conflicts))
    pre_rejects = [{"id": str(study), "reason": "duplicate_measurements", "detail": conflicts[study]}
                   for study in merged.loc[conflicting, "study_id"].tolist()]
    if pre_rejects:
        log.warning("%d records rejected: machine_measurements.csv has differing rows for them", len(pre_rejects))
        merged = merged[~conflicting].reset_index(drop=True)
    duplicates = {"identical_rows_dropped": identical, "studies_with_differing_rows": len(conflicts),
                  "records_rejected": len(pre_rejects)}
    no_file = merged["path"].isna() | (merged["path"].astype(str).str.strip() == "")
    if no_file.any():
        pre_rejects += [{"id": str(study), "reason": "missing_filename", "detail": "no path in record_list.csv"}
                        for study in merged.loc[no_file, "study_id"].tolist()]
        merged = merged[~no_file].reset_index(drop=True)
    prefix = str(root) + os.sep
    frame = pd.DataFrame({
        "id": merged["study_id"].astype(str).astype("string[pyarrow]"),
        "patient_id": merged["subject_id"].astype(str).astype("string[pyarrow]"),
        "split": pd.Series([split_of[s] for s in merged["subject_id"].tolist()], dtype="string[pyarrow]"),
        "path": (prefix + merged["path"].str.strip()).astype("string[pyarrow]"),
        "report": merged["report"].fillna(""),
        "study_id": merged["study_id"],
        "ecg_time": merged["ecg_time"],
        "report_raw": merged["report_raw"].fillna("{}"),
        **{c: merged[c] for c in kinds},
    })
    del merged
    extra_kinds = {"study_id": "int", "ecg_time": "str", "report_raw": "str", **kinds}
    patients = {name: sum(1 for v in split_of.values() if v == name) for name in SPLITS}
    return ItemTable(frame, extra_kinds), extra_kinds, patients, pre_rejects, duplicates


def prepare_mimic_iv_ecg(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fs: int | None = None,
    workers: int = 1,
    seed: int = 0,
    ratios: tuple[float, float, float] = DEFAULT_RATIOS,
    seconds: float = 10.0,
    min_seconds: float | None = None,
    max_gap_seconds: float = 0.2,
    missing_lead: str = "repair",
    max_blanked_fraction: float = 0.5,
    shard_size: int | None = None,
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Prepare a MIMIC-IV-ECG root (``record_list.csv``, ``machine_measurements.csv``, ``files/``).

    Returns the manifest (also written to ``OUT/manifest.json``).
    """
    from data_prep.items import base_features, preprocessing_description
    from data_prep.writer import run_prepare
    from meit.records import SignalPolicy

    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise DataError(f"MIMIC-IV-ECG root {root_path}: not a directory")
    ratios = _check_ratios(tuple(ratios))
    target_fs = 500 if fs is None else int(fs)
    policy = SignalPolicy(
        fs=target_fs, seconds=seconds, min_seconds=min_seconds,
        max_gap_seconds=max_gap_seconds, missing_lead=missing_lead,  # type: ignore[arg-type]
        max_blanked_fraction=max_blanked_fraction,
    )
    table, extra_kinds, patients, pre_rejects, duplicates = _item_table(root_path, ratios, seed, limit)
    features = {**base_features(policy.samples), **_features(extra_kinds)}
    manifest = {
        "source": "mimic-iv-ecg",
        "root": str(root_path),
        "report": "report_0…17 non-empty joined with '. ', EKG→ECG, '***' and '=' removed, lowercased "
                  "(MEIT); raw fields in report_raw",
        "split": {
            "rule": "patients (subject_id) shuffled with numpy default_rng(seed), cut train/validation/test",
            "seed": seed,
            "ratios": list(ratios),
            "patients": patients,
        },
        "preprocessing": preprocessing_description(policy),
        "extra_columns": list(extra_kinds),
        "measurement_duplicates": duplicates,
    }
    config = {
        "source": "mimic-iv-ecg", "root": str(root_path), "fs": policy.fs, "seconds": seconds,
        "min_seconds": policy.minimum_seconds, "max_gap_seconds": max_gap_seconds,
        "missing_lead": missing_lead, "max_blanked_fraction": max_blanked_fraction, "seed": seed,
        "ratios": list(ratios), "limit": limit,
    }
    return run_prepare(
        table, out, features=features, policy=policy, manifest=manifest, config=config, workers=workers,
        shard_size=shard_size, pre_rejects=pre_rejects, overwrite=overwrite, progress=progress,
    )


def _features(kinds: dict[str, str]) -> dict:
    from datasets import Value

    arrow = {"bool": "bool", "int": "int64", "float": "float64", "str": "string"}
    return {c: Value(arrow[k]) for c, k in kinds.items()}


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--ratios: expected three numbers like 0.9,0.01,0.09, got {text!r}") from None
    if len(values) != 3:
        raise ConfigError(f"--ratios: expected three numbers (train,validation,test), got {text!r}")
    return values  # type: ignore[return-value]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ratios", default="0.90,0.01,0.09",
                        help="train,validation,test fractions of patients (default 0.90,0.01,0.09 as MEIT)")


def _prepare(args: argparse.Namespace, common: dict[str, Any]) -> dict:
    return prepare_mimic_iv_ecg(args.root, args.out, ratios=_ratios(args.ratios), **common)


SOURCE = PrepSource(
    name="mimic-iv-ecg",
    title="MIMIC-IV-ECG",
    help="MIMIC-IV-ECG (record_list.csv, machine_measurements.csv)",
    description="Prepare MIMIC-IV-ECG. Splits by subject_id from --seed.",
    add_arguments=_add_arguments,
    prepare=_prepare,
)
