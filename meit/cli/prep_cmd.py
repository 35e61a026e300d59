"""`meit prep ptbxl|mimic-iv-ecg ROOT OUT`: raw PhysioNet folders → prepared dataset (docs/data.md)."""

from __future__ import annotations

import argparse
import json
import os

from meit.errors import ConfigError


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="ROOT", help="the raw dataset folder as downloaded from PhysioNet")
    parser.add_argument("out", metavar="OUT", help="output folder (created; resumable if interrupted)")
    parser.add_argument("--fs", type=int, default=None,
                        help="target sampling rate in Hz (records at another rate are resampled, polyphase)")
    parser.add_argument("--seconds", type=float, default=10.0, help="stored duration; T = fs × seconds (10)")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="shorter records are rejected as too_short; between this and --seconds they "
                        "are zero-padded at the end (default: --seconds)")
    parser.add_argument("--max-gap", type=float, default=0.2, metavar="SECONDS",
                        help="NaN/inf runs up to this long are interpolated; a longer gap makes the lead "
                        "missing (default 0.2 s)")
    parser.add_argument("--missing-lead", choices=("zero", "reject"), default="zero",
                        help="a lead with no usable samples: zero-fill it and record it (default) or "
                        "reject the record")
    parser.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)),
                        help="worker processes (output does not depend on it)")
    parser.add_argument("--seed", type=int, default=0, help="seed for anything random (recorded)")
    parser.add_argument("--shard-size", type=int, default=None,
                        help="records per shard file (default: about 32 MiB of signal)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N records (quick tries)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing prepared dataset in OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "prep", help="prepare a raw ECG dataset (PTB-XL, MIMIC-IV-ECG) for training",
        description="Convert a raw PhysioNet folder into a prepared dataset: DatasetDict "
        "(train/validation/test) + manifest.json + rejected.jsonl. Re-running an interrupted job resumes it.",
    )
    prep_sub = parser.add_subparsers(dest="source", metavar="SOURCE")
    ptb = prep_sub.add_parser("ptbxl", help="PTB-XL (ptbxl_database.csv, records500/ or records100/)",
                              description="Prepare PTB-XL. Splits: strat_fold 1-8 train, 9 validation, 10 test.")
    _common_options(ptb)
    ptb.add_argument("--source", dest="records", choices=("records500", "records100"), default="records500",
                     help="which signal folder to read (default records500; --fs defaults to its rate)")
    ptb.add_argument("--report", default="original",
                     help="'original' (table text), 'scp' (English, composed from SCP statements) or the "
                     "path of a CSV with columns ecg_id,report (translations)")
    ptb.add_argument("--keep-columns", default=None,
                     help="comma-separated table columns to keep as extra columns; default: every column "
                     "that is not part of the official PTB-XL table (e.g. heart_rate, findings); 'none' keeps none")
    ptb.set_defaults(func=run)
    mimic = prep_sub.add_parser("mimic-iv-ecg", help="MIMIC-IV-ECG (record_list.csv, machine_measurements.csv)",
                                description="Prepare MIMIC-IV-ECG. Splits by subject_id from --seed.")
    _common_options(mimic)
    mimic.add_argument("--ratios", default="0.90,0.01,0.09",
                       help="train,validation,test fractions of patients (default 0.90,0.01,0.09 as MEIT)")
    mimic.set_defaults(func=run)
    parser.set_defaults(func=lambda args: _no_source(parser))


def _no_source(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--ratios: expected three numbers like 0.9,0.01,0.09, got {text!r}") from None
    if len(values) != 3:
        raise ConfigError(f"--ratios: expected three numbers (train,validation,test), got {text!r}")
    return values  # type: ignore[return-value]


def _keep(text: str | None) -> list[str] | None:
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    return [c.strip() for c in text.split(",") if c.strip()]


def run(args: argparse.Namespace) -> int:
    common = dict(
        fs=args.fs, workers=args.workers, seed=args.seed, seconds=args.seconds, min_seconds=args.min_seconds,
        max_gap_seconds=args.max_gap, missing_lead=args.missing_lead, shard_size=args.shard_size,
        limit=args.limit, overwrite=args.overwrite, progress=not args.no_progress,
    )
    if args.source == "ptbxl":
        from data_prep.ptbxl import prepare_ptbxl

        manifest = prepare_ptbxl(args.root, args.out, source=args.records, report=args.report,
                                 keep_columns=_keep(args.keep_columns), **common)
    elif args.source == "mimic-iv-ecg":
        from data_prep.mimic_iv_ecg import prepare_mimic_iv_ecg

        manifest = prepare_mimic_iv_ecg(args.root, args.out, ratios=_ratios(args.ratios), **common)
    else:
        raise ConfigError(f"prep: unknown source {args.source!r}; expected ptbxl or mimic-iv-ecg")
    summary = {k: manifest[k] for k in ("source", "counts", "rejected", "rejected_by_reason", "fs", "content_hash")}
    print(json.dumps({"out": str(args.out), **summary}, indent=2))
    return 0
