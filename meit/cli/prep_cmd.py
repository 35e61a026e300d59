"""`meit prep SOURCE ROOT OUT`: raw PhysioNet folders → prepared dataset (docs/data.md).

The sources and their own options come from the registry in :mod:`data_prep.sources`. A run whose
output is complete but useless (no record kept) or suspect (unexpected errors) exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

#: exit code when the dataset was written but no record was kept (every input rejected, or none)
EXIT_NOTHING_KEPT = 7
#: exit code when the dataset was written but some record failed with an unexpected (non-data) error
EXIT_UNEXPECTED_ERRORS = 8
EXIT_CODES_HELP = (
    "Exit codes: 0 done; 2 bad option; 3 bad table or folder (DataError); "
    f"{EXIT_NOTHING_KEPT} the output is complete but no record was kept (all rejected); "
    f"{EXIT_UNEXPECTED_ERRORS} the output is complete but some record failed with an unexpected error "
    "(rejected as unexpected_error; takes precedence over 7). The reasons are printed and in rejected.jsonl."
)


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
                        help="NaN/inf runs up to this long are interpolated; a longer one is a missing span "
                        "(default 0.2 s)")
    parser.add_argument("--missing-lead", choices=("repair", "zero", "reject"), default="repair",
                        help="a missing span (longer gap, lead without samples, dead flat limb lead): 'repair' "
                        "rebuilds a limb lead's span from two other limb leads and blanks any other span to "
                        "0 mV (default); 'zero' only blanks; 'reject' rejects the record")
    parser.add_argument("--max-blanked", type=float, default=0.5, metavar="FRACTION",
                        help="reject a record (too_much_missing) when more than this fraction of its samples "
                        "had to be blanked (default 0.5)")
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
        source_parser = prep_sub.add_parser(source.name, help=source.help, description=source.description,
                                            epilog=EXIT_CODES_HELP)
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
        max_gap_seconds=args.max_gap, missing_lead=args.missing_lead, max_blanked_fraction=args.max_blanked,
        shard_size=args.shard_size,
        limit=args.limit, overwrite=args.overwrite, progress=not args.no_progress,
    )
    manifest = get_source(args.source).prepare(args, common)
    summary = {k: manifest[k] for k in ("source", "counts", "rejected", "rejected_by_reason", "fs", "content_hash")}
    print(json.dumps({"out": str(args.out), **summary}, indent=2))
    return outcome_code(manifest, args.out)


def outcome_code(manifest: dict, out: str | os.PathLike) -> int:
    """The exit code of a finished preparation, with the reasons on stderr when it is not 0.

    A dataset without a single row, or one where a record failed for a reason that is not about
    its data (a bug, an unforeseen file problem), is not a success even though the folder is complete.
    """
    by_reason: dict[str, int] = manifest.get("rejected_by_reason", {})
    kept = sum(manifest.get("counts", {}).values())
    unexpected = by_reason.get("unexpected_error", 0)
    if not unexpected and kept:
        return 0
    rejected_file = Path(out) / "rejected.jsonl"
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(by_reason.items(), key=lambda kv: -kv[1]))
    if unexpected:
        print(f"meit prep: {unexpected} of {manifest.get('inputs', 0)} records failed with an unexpected error "
              f"(not a data problem: please report it); rejected by reason: {reasons}", file=sys.stderr)
        for line in _first_unexpected(rejected_file, 3):
            print(f"  {line['id']}: {line['detail']}", file=sys.stderr)
        print(f"  all of them in {rejected_file}", file=sys.stderr)
        return EXIT_UNEXPECTED_ERRORS
    print(f"meit prep: no record was kept: every one of the {manifest.get('inputs', 0)} input records was "
          f"rejected ({reasons or 'no input records'}); see {rejected_file}", file=sys.stderr)
    return EXIT_NOTHING_KEPT


def _first_unexpected(path: Path, n: int) -> list[dict]:
    found: list[dict] = []
    if not path.is_file():
        return found
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record.get("reason") == "unexpected_error":
                found.append(record)
                if len(found) == n:
                    break
    return found
