"""``meit render DATA --split S --out OUT`` / ``meit render --record PATH --out FILE``: ECGs as images."""

from __future__ import annotations

import argparse
import json
import sys

from meit.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "render",
        help="render ECGs as paper-style images (or GAF / recurrence-plot / MTF encodings)",
        description="Render a prepared split (or one wfdb / .npy record) as 12-lead ECG paper: 25 mm/s, "
        "10 mm/mV, 1 mm / 5 mm grid, calibration pulses, lead labels, a JSON sidecar with every lead's box in "
        "pixels; optionally augmented to look scanned or photographed. --mode gaf|rp|mtf writes Qiu et al.'s "
        "signal encodings instead (.npy, one channel per lead, plus a PNG preview). A split goes to OUT with "
        "records/<id>.png|.json, index.json and skipped.jsonl, published atomically. See docs/images.md. "
        "Exit codes: 0 done; 2 bad option; 3 bad data; 7 nothing rendered (every record skipped); "
        "8 some record failed with an unexpected error (the output is complete; see skipped.jsonl).",
    )
    parser.add_argument("data", nargs="?", metavar="DATA_DIR", help="a prepared dataset (meit prep / meit synth)")
    parser.add_argument("--record", default=None, metavar="PATH",
                        help="render one record instead: a wfdb record (with or without .hea) or a .npy array")
    parser.add_argument("--fs", type=int, default=None, help="sampling rate of a .npy --record")
    parser.add_argument("--split", default="test", help="split of DATA_DIR (default test)")
    parser.add_argument("--out", required=True,
                        help="output folder for a split; for --record a file name (FILE.png, FILE.json[, FILE.npy])")
    # choices are checked in run(): importing meit.render (numpy) here would slow every `meit --help`
    parser.add_argument("--mode", default="paper",
                        help="paper image (default) or a signal encoding: gaf, rp or mtf")
    parser.add_argument("--layout", default="3x4", help="3x4 (+ lead II rhythm strip; default), 6x2 or 12x1")
    parser.add_argument("--dpi", type=int, default=100, help="pixels per inch of paper (default 100)")
    parser.add_argument("--speed", type=float, default=25.0, help="paper speed, mm/s (default 25)")
    parser.add_argument("--gain", type=float, default=10.0, help="gain, mm/mV (default 10)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each record shown (default 10)")
    parser.add_argument("--size", type=int, default=224, help="image size of the gaf/rp/mtf encodings (default 224)")
    parser.add_argument("--augment", default=None, metavar="EFFECT=S,…",
                        help="scan/photo effects with strengths in [0, 1], e.g. rotation=0.3,blur=0.2 or all=0.5; "
                        "effects: rotation, perspective, blur, noise, jpeg, colour, contrast, shadow, crease, marks")
    parser.add_argument("--seed", type=int, default=0, help="augmentation seed (each record's own seed derives "
                        "from it and the record id)")
    parser.add_argument("--no-grid", action="store_true", help="white paper without the grid")
    parser.add_argument("--no-calibration", action="store_true", help="no calibration pulses")
    parser.add_argument("--no-labels", action="store_true", help="no lead labels")
    parser.add_argument("--limit", type=int, default=None, help="only the first N records of the split")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier meit render output with other settings (or existing --record files)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meit.render import LAYOUTS, MODES, Augmentation
    from meit.render_jobs import (
        EXIT_NOTHING_RENDERED,
        EXIT_UNEXPECTED_ERRORS,
        RenderSettings,
        render_record_file,
        render_split,
    )

    for flag, value, allowed in (("--mode", args.mode, MODES), ("--layout", args.layout, tuple(LAYOUTS))):
        if value not in allowed:
            raise ConfigError(f"{flag} {value!r} is not known; expected one of: {', '.join(allowed)}")
    if (args.data is None) == (args.record is None):
        raise ConfigError("give either DATA_DIR (a prepared dataset) or --record PATH, not both and not neither")
    settings = RenderSettings(
        mode=args.mode, layout=args.layout, dpi=args.dpi, speed_mm_s=args.speed, gain_mm_mv=args.gain,
        seconds=args.seconds, grid=not args.no_grid, calibration=not args.no_calibration, labels=not args.no_labels,
        size=args.size, augmentation=Augmentation.parse(args.augment), seed=args.seed,
    )
    if args.record is not None:
        paths = render_record_file(args.record, args.out, settings, fs=args.fs, overwrite=args.overwrite)
        print("\n".join(str(p) for p in paths.values()))
        return 0
    index = render_split(args.data, args.split, args.out, settings, limit=args.limit, overwrite=args.overwrite,
                         progress=not args.no_progress)
    counts = index["counts"]
    note = " (already rendered with these settings; nothing to do)" if index.get("unchanged") else ""
    print(json.dumps({"out": args.out, **counts}) + note)
    reasons = counts["skipped_by_reason"]
    if counts["rendered"] == 0:
        print(f"meit render: no record rendered; skipped: {reasons}", file=sys.stderr)
        return EXIT_NOTHING_RENDERED
    if reasons.get("unexpected_error"):
        print(f"meit render: {reasons['unexpected_error']} record(s) failed with an unexpected error; "
              f"see {args.out}/skipped.jsonl", file=sys.stderr)
        return EXIT_UNEXPECTED_ERRORS
    return 0
