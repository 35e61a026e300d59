"""Corrupted inputs: bad records and tables fed to ``meit prep``, bad arrays to ``meit generate``'s reader.

Each case starts from a small clean synthetic PTB-XL root (``meit.synth``), damages one thing in it
(seeded: which record, lead, span, value), runs the real command and classifies what happened. The
outcome is *clear* when the damage ends as a typed one-line error (for damage to the tables: the run
cannot know what was meant) or as a counted reject / named repair of that one record with every other
record kept unchanged and the manifest's counts adding up. Anything else is reported as it is: a crash
with a traceback, bad data kept without a word, a record lost, counts that do not add up.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meit.bench.fault_kill import Run, clean_env, run_command
from meit.errors import MeitError
from meit.leads import CANONICAL_LEADS

#: WFDB's "invalid sample" value for format 16, read as NaN
_INVALID = -32768
#: columns of ptbxl_database.csv that ``meit prep ptbxl --source records100 --report original`` needs
NEEDED_COLUMNS = ("ecg_id", "patient_id", "strat_fold", "filename_lr", "report")
#: repair kinds that name what was done to missing samples (see docs/data.md, Signal policy)
GAP_REPAIRS = ("interpolated", "rebuilt", "blanked")
#: and those for samples beyond the amplitude limit, which are missing samples first (``out_of_range``)
RANGE_REPAIRS = ("out_of_range", *GAP_REPAIRS)


@dataclass(frozen=True)
class Damage:
    """What a case did: the record it damaged (None: no single record), in words, and the leads touched."""

    target: str | None
    description: str
    leads: tuple[int, ...] = ()


@dataclass
class Base:
    """The clean synthetic root and what ``meit prep`` made of it, to compare every case against."""

    root: Path
    fs: int
    records: dict[str, str]  # id → record path below root, without extension
    kept: dict[str, str]  # id → digest of (ecg, report, repairs) as prepared
    repairs: dict[str, list[str]]
    rejected: dict[str, str]  # id → reason
    inputs: int


@dataclass(frozen=True)
class InputKind:
    """One kind of damage: where it goes (``prep`` or ``npy``), its scope, and how to make a case of it.

    Scope decides what a clear outcome is: ``record`` damage must cost that record alone (a reject or a
    named repair; a typed error would throw away every good record with it); ``row`` damage to the table
    may also stop the run with a typed error naming it; ``table`` damage (a missing column) must.
    """

    name: str
    target: str
    scope: str
    what: str
    make: Callable[[Path, np.random.Generator, Base], Damage]
    accounted: tuple[str, ...] = ()  # repair kinds that account for the damage when the record is kept


# -- damaging wfdb records ------------------------------------------------------------------------------


def _pick_record(rng: np.random.Generator, base: Base) -> str:
    return sorted(base.records, key=int)[int(rng.integers(len(base.records)))]


def _rewrite(path: Path, edit: Callable[[np.ndarray], np.ndarray], *, fmt: str | None = None,
             gain: float | None = None) -> None:
    """Read a record's digital samples with wfdb, change them, write the record back with wfdb."""
    import wfdb

    rec = wfdb.rdrecord(str(path), physical=False)
    digital = edit(rec.d_signal.astype(np.int64))
    n = digital.shape[1]
    wfdb.wrsamp(path.name, fs=rec.fs, units=list(rec.units), sig_name=list(rec.sig_name), d_signal=digital,
                fmt=[fmt] * n if fmt else list(rec.fmt), adc_gain=[gain] * n if gain else list(rec.adc_gain),
                baseline=list(rec.baseline), write_dir=str(path.parent))


def _edit_header(path: Path, edit: Callable[[list[str], list[list[str]]], None]) -> None:
    """Change fields of a ``.hea``: the record line's and the signal lines' whitespace-separated fields."""
    hea = path.with_name(path.name + ".hea")
    lines = hea.read_text().splitlines()
    record = lines[0].split()
    signals = [line.split() for line in lines[1:13]]
    edit(record, signals)
    hea.write_text("\n".join([" ".join(record), *(" ".join(s) for s in signals), *lines[13:]]) + "\n")


def _span(rng: np.random.Generator, length: int, fs: int) -> tuple[str, int, int]:
    """A seeded run of samples: short (under --max-gap), long, or the whole record."""
    mode = str(rng.choice(["short", "long", "whole"]))
    if mode == "short":
        n = int(rng.integers(2, max(3, int(0.2 * fs))))
    elif mode == "long":
        n = int(rng.integers(int(0.5 * fs), int(3 * fs)))
    else:
        return mode, 0, length
    start = int(rng.integers(0, length - n))
    return mode, start, start + n


def truncated_dat(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid = _pick_record(rng, base)
    dat = root / f"{base.records[rid]}.dat"
    size = dat.stat().st_size
    keep = int(size * rng.uniform(0.05, 0.95))
    dat.write_bytes(dat.read_bytes()[:keep])
    return Damage(rid, f"record {rid}: .dat cut to {keep} of {size} bytes")


def header_fs(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid = _pick_record(rng, base)
    value = str(rng.choice(["0", "-100", "abc", "50", "200", "1000"]))

    def edit(record: list[str], _: list[list[str]]) -> None:
        record[2] = value

    _edit_header(root / base.records[rid], edit)
    return Damage(rid, f"record {rid}: sampling frequency {base.fs} → {value}")


def header_nsig(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid = _pick_record(rng, base)
    value = str(rng.choice(["0", "-1", "11", "13", "24"]))

    def edit(record: list[str], _: list[list[str]]) -> None:
        record[1] = value

    _edit_header(root / base.records[rid], edit)
    return Damage(rid, f"record {rid}: number of signals 12 → {value}")


def _leads(rng: np.random.Generator) -> tuple[int, ...]:
    """One seeded lead, or all twelve."""
    return tuple(range(12)) if rng.random() < 0.5 else (int(rng.integers(12)),)


def header_gain0(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid, leads = _pick_record(rng, base), _leads(rng)

    def edit(_: list[str], signals: list[list[str]]) -> None:
        for lead in leads:
            signals[lead][2] = re.sub(r"^[^(/]+", "0", signals[lead][2])

    _edit_header(root / base.records[rid], edit)
    return Damage(rid, f"record {rid}: gain 0 for {_lead_names(leads)}", leads)


def header_units(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid, leads = _pick_record(rng, base), _leads(rng)
    unit = str(rng.choice(["NU", "adu", "mmHg", "degC"]))

    def edit(_: list[str], signals: list[list[str]]) -> None:
        for lead in leads:
            signals[lead][2] = re.sub(r"/.*$", "", signals[lead][2]) + f"/{unit}"

    _edit_header(root / base.records[rid], edit)
    return Damage(rid, f"record {rid}: units {unit!r} for {_lead_names(leads)}", leads)


def nan_block(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid = _pick_record(rng, base)
    leads = tuple(range(12)) if rng.random() < 0.2 else (int(rng.integers(12)),)
    length = round(base.fs * 10)
    mode, start, end = _span(rng, length, base.fs)

    def edit(digital: np.ndarray) -> np.ndarray:
        digital[start:end, list(leads)] = _INVALID
        return digital

    _rewrite(root / base.records[rid], edit)
    return Damage(rid, f"record {rid}: invalid samples (NaN) in {_lead_names(leads)}, samples {start}-{end} "
                  f"({mode})", leads)


def huge_values(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid, lead = _pick_record(rng, base), int(rng.integers(12))
    start = int(rng.integers(0, 9 * base.fs))
    end = start + int(rng.integers(2, base.fs))
    value = int(rng.uniform(1e8, 2e9)) * int(rng.choice([-1, 1]))

    def edit(digital: np.ndarray) -> np.ndarray:
        digital[start:end, lead] = value
        return digital

    _rewrite(root / base.records[rid], edit, fmt="32")
    return Damage(rid, f"record {rid}: {_lead_names((lead,))} samples {start}-{end} = {value / 1000:.3g} mV "
                  "(format 32)", (lead,))


def uv_as_mv(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid = _pick_record(rng, base)
    _rewrite(root / base.records[rid], lambda digital: digital, gain=1.0)
    return Damage(rid, f"record {rid}: samples in µV, header says mV (gain 1000 → 1 adu/mV)", tuple(range(12)))


# -- damaging ptbxl_database.csv ------------------------------------------------------------------------


def _read_table(root: Path) -> tuple[list[str], list[list[str]]]:
    with open(root / "ptbxl_database.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _write_table(root: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(root / "ptbxl_database.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def csv_empty_row(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    header, rows = _read_table(root)
    at = int(rng.integers(0, len(rows) + 1))
    rows.insert(at, [""] * len(header))
    _write_table(root, header, rows)
    return Damage(None, f"ptbxl_database.csv: a row of empty cells inserted at data row {at + 1}")


def csv_empty_cells(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    header, rows = _read_table(root)
    rid = _pick_record(rng, base)
    column = str(rng.choice(NEEDED_COLUMNS))
    row = next(r for r in rows if r[header.index("ecg_id")] == rid)
    row[header.index(column)] = ""
    _write_table(root, header, rows)
    return Damage(rid, f"ptbxl_database.csv: record {rid}'s {column} left empty")


def csv_missing_column(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    header, rows = _read_table(root)
    column = str(rng.choice(NEEDED_COLUMNS))
    at = header.index(column)
    _write_table(root, header[:at] + header[at + 1:], [r[:at] + r[at + 1:] for r in rows])
    return Damage(None, f"ptbxl_database.csv: column {column} removed")


# -- .npy arrays for meit generate's reader -------------------------------------------------------------


def _npy_path(root: Path) -> Path:
    return root / "record.npy"


def _write_npy(root: Path, rng: np.random.Generator, base: Base) -> tuple[str, np.ndarray]:
    """A clean (12, T) millivolt array of a seeded record, as ``meit generate`` would be given it."""
    import wfdb

    rid = _pick_record(rng, base)
    signal = wfdb.rdrecord(str(base.root / base.records[rid])).p_signal.T.copy()
    np.save(_npy_path(root), signal)
    return rid, signal


def npy_truncated(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid, _ = _write_npy(root, rng, base)
    path = _npy_path(root)
    size = path.stat().st_size
    keep = int(size * rng.uniform(0.01, 0.95))
    path.write_bytes(path.read_bytes()[:keep])
    return Damage(rid, f"record {rid} as .npy cut to {keep} of {size} bytes")


def _npy_block(value: float) -> Callable[[Path, np.random.Generator, Base], Damage]:
    def make(root: Path, rng: np.random.Generator, base: Base) -> Damage:
        rid, signal = _write_npy(root, rng, base)
        leads = tuple(range(12)) if rng.random() < 0.2 else (int(rng.integers(12)),)
        mode, start, end = _span(rng, signal.shape[1], base.fs)
        signal[list(leads), start:end] = value
        np.save(_npy_path(root), signal)
        return Damage(rid, f"record {rid} as .npy: {value} in {_lead_names(leads)}, samples {start}-{end} ({mode})",
                      leads)

    return make


def npy_huge_values(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid, signal = _write_npy(root, rng, base)
    lead = int(rng.integers(12))
    mode, start, end = _span(rng, signal.shape[1], base.fs)
    value = float(10.0 ** rng.uniform(3, 45)) * float(rng.choice([-1, 1]))
    signal[lead, start:end] = value
    np.save(_npy_path(root), signal)
    return Damage(rid, f"record {rid} as .npy: {value:.3g} mV in {_lead_names((lead,))}, samples {start}-{end} "
                  f"({mode})", (lead,))


def npy_uv_as_mv(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid, signal = _write_npy(root, rng, base)
    np.save(_npy_path(root), signal * 1000.0)
    return Damage(rid, f"record {rid} as .npy in µV (×1000), read as mV", tuple(range(12)))


def npy_wrong_shape(root: Path, rng: np.random.Generator, base: Base) -> Damage:
    rid, signal = _write_npy(root, rng, base)
    shape = str(rng.choice(["11 leads", "flat (T,)", "(12, T, 1)", "(12, 12)"]))
    bad = {"11 leads": signal[:11], "flat (T,)": signal[0], "(12, T, 1)": signal[:, :, None],
           "(12, 12)": signal[:, :12]}[shape]
    np.save(_npy_path(root), bad)
    return Damage(rid, f"record {rid} as .npy with shape {bad.shape} ({shape})")


def _lead_names(leads: tuple[int, ...]) -> str:
    return "all 12 leads" if len(leads) == 12 else ", ".join(CANONICAL_LEADS[i] for i in leads)


KINDS: dict[str, InputKind] = {k.name: k for k in (
    InputKind("truncated_dat", "prep", "record", "a .dat shorter than its header says", truncated_dat),
    InputKind("header_fs", "prep", "record", "sampling frequency field: 0, negative, text, or another rate",
              header_fs),
    InputKind("header_nsig", "prep", "record", "number-of-signals field: 0, -1, 11, 13, 24", header_nsig),
    InputKind("header_gain0", "prep", "record", "gain 0 for one lead or all", header_gain0),
    InputKind("header_units", "prep", "record", "units NU / adu / mmHg / degC for one lead or all", header_units),
    InputKind("nan_block", "prep", "record", "invalid samples (NaN) over a short, long or whole span",
              nan_block, GAP_REPAIRS),
    InputKind("huge_values", "prep", "record", "a block of 10^5-10^6 mV samples (format 32)", huge_values,
              RANGE_REPAIRS),
    InputKind("uv_as_mv", "prep", "record", "µV samples labelled mV", uv_as_mv),
    InputKind("csv_empty_row", "prep", "row", "a row of empty cells in ptbxl_database.csv", csv_empty_row),
    InputKind("csv_empty_cells", "prep", "row", "one needed cell of a record left empty", csv_empty_cells),
    InputKind("csv_missing_column", "prep", "table", "a needed column removed", csv_missing_column),
    InputKind("npy_truncated", "npy", "record", ".npy file cut short", npy_truncated),
    InputKind("npy_nan_block", "npy", "record", "NaN over a short, long or whole span", _npy_block(float("nan")),
              GAP_REPAIRS),
    InputKind("npy_inf_block", "npy", "record", "+inf over a short, long or whole span", _npy_block(float("inf")),
              GAP_REPAIRS),
    InputKind("npy_huge_values", "npy", "record", "a span of 10^3-10^45 mV", npy_huge_values, RANGE_REPAIRS),
    InputKind("npy_uv_as_mv", "npy", "record", "µV array given as mV", npy_uv_as_mv),
    InputKind("npy_wrong_shape", "npy", "record", "11 leads, 1-D, 3-D or (12, 12)", npy_wrong_shape),
)}


def case_rng(seed: int, kind: str, case: int) -> np.random.Generator:
    """The generator of one case, from the seed, the kind's name and the case number alone."""
    return np.random.default_rng([seed, zlib.crc32(kind.encode()), case])


# -- the clean base and running prep --------------------------------------------------------------------


def prep_argv(python: list[str], root: Path, out: Path) -> list[str]:
    return [*python, "-m", "meit", "prep", "ptbxl", str(root), str(out), "--source", "records100", "--workers", "1",
            "--no-progress"]


def read_prepared(out: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Digest of (ecg, report, repairs) and the repairs of every kept record, by id."""
    import datasets

    digests: dict[str, str] = {}
    repairs: dict[str, list[str]] = {}
    dd = datasets.load_from_disk(str(out))
    for split in dd:
        for row in dd[split].select_columns(["id", "ecg", "report", "repairs"]).with_format("numpy"):
            rid = str(row["id"])
            ecg = np.ascontiguousarray(np.asarray(row["ecg"], dtype=np.float32))
            text = json.dumps([str(row["report"]), [str(r) for r in row["repairs"]]])
            digests[rid] = hashlib.sha256(ecg.tobytes() + text.encode()).hexdigest()
            repairs[rid] = [str(r) for r in row["repairs"]]
    return digests, repairs


def read_rejected(out: Path) -> list[dict[str, Any]]:
    path = out / "rejected.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def make_base(folder: Path, n: int, seed: int, python: list[str], timeout: float) -> Base:
    """A clean synthetic 100 Hz PTB-XL root of ``n`` records and its preparation (must reject nothing)."""
    import pandas as pd

    from meit.synth import generate_ptbxl_layout

    root = folder / "raw"
    if not (root / "ptbxl_database.csv").is_file():
        generate_ptbxl_layout(root, n=n, seed=seed, fs=100, seconds=10.0, workers=1, write_lr=False, progress=False)
    table = pd.read_csv(root / "ptbxl_database.csv", usecols=["ecg_id", "filename_lr"])
    records = {str(i): str(f) for i, f in zip(table["ecg_id"], table["filename_lr"], strict=True)}
    out = folder / "prepared"
    shutil.rmtree(out, ignore_errors=True)
    run = run_command(prep_argv(python, root, out), clean_env(), folder / "prepared.log", timeout=timeout)
    if run.returncode != 0:
        raise MeitError(f"preparing the clean synthetic root failed ({run.error()})")
    manifest = json.loads((out / "manifest.json").read_text())
    kept, repairs = read_prepared(out)
    rejected = {str(r["id"]): str(r["reason"]) for r in read_rejected(out)}
    return Base(root, 100, records, kept, repairs, rejected, int(manifest["inputs"]))


# -- classification -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    clear: bool
    outcome: str  # short label, counted in the table
    detail: str = ""


def _prep_failure(kind: InputKind, run: Run, out: Path) -> Outcome:
    """A prep run that ended without a complete dataset."""
    text = run.log.read_text(errors="replace")
    if "Traceback" in text or run.returncode not in (2, 3):
        return Outcome(False, f"crash (exit {run.returncode})", run.error())
    if (out / "manifest.json").is_file():
        return Outcome(False, "error, yet manifest.json written", run.error())
    if kind.scope == "record":  # one bad record threw every good one away
        return Outcome(False, f"run stopped (exit {run.returncode})", run.error())
    return Outcome(True, f"typed error (exit {run.returncode})", run.error())


def classify_prep(kind: InputKind, damage: Damage, run: Run, out: Path, base: Base) -> Outcome:
    """Clear or not, and why: the run's exit, the counts, the other records, then the damaged record."""
    if run.returncode not in (0, 7, 8) or not (out / "manifest.json").is_file():
        return _prep_failure(kind, run, out)
    manifest = json.loads((out / "manifest.json").read_text())
    rejects = read_rejected(out)
    kept, repairs = read_prepared(out)
    counts = sum(manifest["counts"].values())
    if manifest["inputs"] != counts + manifest["rejected"] or len(rejects) != manifest["rejected"] \
            or counts != len(kept):
        return Outcome(False, "counts do not add up",
                       f"inputs {manifest['inputs']}, kept {counts} ({len(kept)} rows), rejected "
                       f"{manifest['rejected']} ({len(rejects)} lines)")
    for rid, digest in base.kept.items():
        if rid == damage.target:
            continue
        if rid not in kept:
            return Outcome(False, "another record lost", f"record {rid} is no longer kept (exit {run.returncode})")
        if kept[rid] != digest:
            return Outcome(False, "another record changed", f"record {rid} differs from the clean preparation")
    new_rejects = [r for r in rejects if str(r["id"]) not in base.rejected]
    unexpected = [r for r in new_rejects if r["reason"] == "unexpected_error"]
    if unexpected:
        return Outcome(False, "unexpected_error reject", f"{unexpected[0]['id']}: {unexpected[0]['detail']}"[:300])
    if kind.scope == "table":
        return Outcome(False, "column missing, run went on", f"exit {run.returncode}; {len(kept)} kept")
    if damage.target is None:  # an inserted row: it is an input, so it must be rejected, not dropped
        if manifest["inputs"] == base.inputs:
            return Outcome(False, "row dropped, not counted", f"inputs {manifest['inputs']} as without the row")
        if len(new_rejects) == 1:
            return Outcome(True, f"rejected: {new_rejects[0]['reason']}", str(new_rejects[0].get("detail", ""))[:300])
        extra = sorted(set(kept) - set(base.kept))
        return Outcome(False, "row kept as a record" if extra else "row unaccounted for", ", ".join(extra))
    mine = [r for r in new_rejects if str(r["id"]) == damage.target]
    if not mine and damage.target not in kept and len(new_rejects) == 1:  # the row lost its id, e.g. ecg_id
        mine = new_rejects
    if mine:
        return Outcome(True, f"rejected: {mine[0]['reason']}", str(mine[0].get("detail", ""))[:300])
    if damage.target in kept:
        added = [r for r in repairs[damage.target] if r not in base.repairs.get(damage.target, [])]
        named = sorted({r.split(":", 1)[0] for r in added if r.split(":", 1)[0] in kind.accounted})
        if named:
            return Outcome(True, f"repaired: {', '.join(named)}", "; ".join(added)[:300])
        return Outcome(False, "kept, no note", f"repairs {added or 'none'}")
    return Outcome(False, "record lost", f"record {damage.target} is neither kept nor rejected")


def classify_npy(kind: InputKind, damage: Damage, path: Path, clean: np.ndarray, fs: int) -> Outcome:
    """``meit generate``'s reader on a damaged array: a typed error, a named repair, or something else."""
    from meit.records import read_ecg

    try:
        signal, _, repairs = read_ecg(path, fs=fs)
    except MeitError as err:
        return Outcome(True, f"typed error ({type(err).__name__})", str(err)[-300:])
    except Exception as err:  # what the suite is here to find
        return Outcome(False, f"crash ({type(err).__name__})", str(err)[:300])
    if signal.shape != clean.shape or not np.isfinite(signal).all():
        return Outcome(False, "bad array returned", f"shape {signal.shape}, finite {bool(np.isfinite(signal).all())}")
    untouched = [i for i in range(12) if i not in damage.leads]
    rebuilt = {r.split(":")[1] for r in repairs if r.startswith("rebuilt:")}
    changed = [CANONICAL_LEADS[i] for i in untouched
               if CANONICAL_LEADS[i] not in rebuilt and not np.array_equal(signal[i], clean[i])]
    if changed:
        return Outcome(False, "other leads altered", ", ".join(changed))
    named = sorted({r.split(":", 1)[0] for r in repairs if r.split(":", 1)[0] in kind.accounted})
    if named:
        return Outcome(True, f"repaired: {', '.join(named)}", "; ".join(repairs)[:300])
    return Outcome(False, "accepted, no note", f"repairs {repairs or 'none'}")


def run_case(kind: InputKind, case: int, seed: int, base: Base, folder: Path, python: list[str],
             timeout: float) -> dict[str, Any]:
    """Make one damaged copy, run it through prep (or the array reader), classify the outcome."""
    root = folder / f"{kind.name}-{case}"
    shutil.rmtree(root, ignore_errors=True)
    rng = case_rng(seed, kind.name, case)
    if kind.target == "npy":
        root.mkdir(parents=True)
        damage = kind.make(root, rng, base)
        clean = _clean_read(base, damage.target)
        result = classify_npy(kind, damage, _npy_path(root), clean, base.fs)
        exit_code = None
    else:
        raw = root / "raw"
        shutil.copytree(base.root, raw)
        damage = kind.make(raw, rng, base)
        out = root / "out"
        run = run_command(prep_argv(python, raw, out), clean_env(), root / "prep.log", timeout=timeout)
        result = classify_prep(kind, damage, run, out, base)
        exit_code = run.returncode
    return {"kind": f"input:{kind.name}", "case": case, "damage": damage.description, "exit": exit_code,
            "outcome": result.outcome, "clear": result.clear, "detail": result.detail}


def _clean_read(base: Base, rid: str | None) -> np.ndarray:
    """What the reader gives for the undamaged array of record ``rid``."""
    import tempfile

    import wfdb

    from meit.records import read_ecg

    signal = wfdb.rdrecord(str(base.root / base.records[str(rid)])).p_signal.T.copy()
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "clean.npy", signal)
        return read_ecg(Path(tmp) / "clean.npy", fs=base.fs)[0]
