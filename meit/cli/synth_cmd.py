"""``meit synth --out ROOT --n N --seed S``: a synthetic 12-lead dataset in PTB-XL's raw layout."""

from __future__ import annotations

import argparse

from meit.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "synth",
        help="generate synthetic 12-lead ECGs + English reports in PTB-XL raw layout",
        description="Generate physiologically consistent 12-lead ECGs (one cardiac dipole seen through "
        "all leads) with known findings (SCP codes) and varied English reports, written as "
        "ptbxl_database.csv, scp_statements.csv and WFDB records under records500/ and records100/, "
        "ready for `meit prep ptbxl`. Same seed, same bytes. Findings, label mix and benchmark: "
        "docs/synth.md.",
    )
    parser.add_argument("--out", help="output root (created if missing)")
    parser.add_argument("--n", type=int, default=1000, help="number of records (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--fs", type=int, default=500, help="sampling rate, 500 or 100 Hz (default 500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="record length (default 10 s)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument(
        "--noise", default="1", metavar="LEVEL",
        help="noise level: 0 clean, 1 typical resting ECG (default), 2-3 poor recording; or per kind, "
        "e.g. 'baseline=2,powerline=0,emg=0.5,mains=60'",
    )
    parser.add_argument(
        "--label-mix", default=None, metavar="MIX",
        help="finding probabilities: a JSON file, a JSON object or key=value,… "
        "(e.g. 'normal=0.2,afib=0.3,lbbb=0.15'); see docs/synth.md",
    )
    parser.add_argument("--no-lr", action="store_true", help="do not write the 100 Hz records100/ copy")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--bench", action="store_true", help="measure records/s instead of writing --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meit.synth.alloc import tune_allocator

    tune_allocator()  # this process is ours: keep per-record arrays' memory for reuse
    if args.bench:
        from meit.bench.synth import run_bench

        if args.n < 1:
            raise ConfigError(f"--n {args.n}: must be >= 1")
        print(run_bench(min(args.n, 5000), args.fs, args.seconds, max(args.workers, 1), args.seed).describe())
        return 0
    if not args.out:
        raise ConfigError("--out ROOT is required (or --bench)")
    from meit.synth import LabelMix, NoiseMix, generate_ptbxl_layout

    mix = LabelMix.parse(args.label_mix) if args.label_mix else None
    noise = NoiseMix.parse(args.noise)
    summary = generate_ptbxl_layout(
        args.out, args.n, seed=args.seed, fs=args.fs, seconds=args.seconds, workers=args.workers,
        label_mix=mix, noise_level=noise, write_lr=not args.no_lr, progress=not args.no_progress,
    )
    counts = ", ".join(f"{k} {v}" for k, v in summary.finding_counts.items())
    records = "record" if summary.n_records == 1 else "records"
    patients = "patient" if summary.n_patients == 1 else "patients"
    print(
        f"wrote {summary.n_records} {records} of {summary.n_patients} {patients} to {summary.root} "
        f"in {summary.elapsed_s:.1f}s ({summary.records_per_second:.0f} records/s)\nfindings: {counts}"
    )
    return 0
