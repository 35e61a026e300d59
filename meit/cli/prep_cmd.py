"""`meit prep SOURCE ROOT OUT`: raw PhysioNet folders → prepared dataset (docs/data.md).

The sources and their own options come from the registry in :mod:`data_prep.sources`.
"""

from __future__ import annotations

import argparse
import json
import os


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
    from data_prep.sources import sources

    registered = sources()
    titles = ", ".join(source.title for source in registered.values())
    parser = sub.add_parser(
        "prep", help=f"prepare a raw ECG dataset ({titles}) for training",
        description="Convert a raw PhysioNet folder into a prepared dataset: DatasetDict "
        "(train/validation/test) + manifest.json + rejected.jsonl. Re-running an interrupted job resumes it.",
    )
    prep_sub = parser.add_subparsers(dest="source", metavar="SOURCE")
    for source in registered.values():
        source_parser = prep_sub.add_parser(source.name, help=source.help, description=source.description)
        _common_options(source_parser)
        source.add_arguments(source_parser)
        source_parser.set_defaults(func=run)
    parser.set_defaults(func=lambda args: _no_source(parser))


def _no_source(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run(args: argparse.Namespace) -> int:
    from data_prep.sources import get_source

    common = dict(
        fs=args.fs, workers=args.workers, seed=args.seed, seconds=args.seconds, min_seconds=args.min_seconds,
        max_gap_seconds=args.max_gap, missing_lead=args.missing_lead, shard_size=args.shard_size,
        limit=args.limit, overwrite=args.overwrite, progress=not args.no_progress,
    )
    manifest = get_source(args.source).prepare(args, common)
    summary = {k: manifest[k] for k in ("source", "counts", "rejected", "rejected_by_reason", "fs", "content_hash")}
    print(json.dumps({"out": str(args.out), **summary}, indent=2))
    return 0
