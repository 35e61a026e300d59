"""``meit bench SUITE.yaml``: compare backbones."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="train and evaluate every backbone of a suite; CSV, markdown table and plots",
        description="Run a benchmark suite (e.g. eval/suites/cpu.yaml): for each backbone train then evaluate, "
        "in sequence here (--mode run), or write one job script per backbone for a cluster (--mode emit), "
        "then gather results (--mode collect). Results: OUTPUT_DIR/results.csv, results.md, figures/.",
    )
    parser.add_argument("suite", help="suite YAML")
    parser.add_argument("--mode", choices=["run", "emit", "collect"], default="run")
    parser.add_argument("--launcher", default="accelerate launch",
                        help="launcher prefix for --mode emit (default: 'accelerate launch')")
    parser.add_argument("--only", nargs="*", default=None, help="run only these backbones of the suite")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from meit.bench.runner import collect, emit_jobs, run_sequential
    from meit.bench.suite import load_suite
    from meit.errors import ConfigError

    suite, suite_dir = load_suite(args.suite)
    if args.only:
        unknown = sorted(set(args.only) - {b.name for b in suite.backbones})
        if unknown:
            raise ConfigError(f"--only names backbones not in the suite: {unknown}")
        suite = suite.model_copy(update={"backbones": [b for b in suite.backbones if b.name in args.only]})
    if args.mode == "emit":
        for script in emit_jobs(suite, suite_dir, args.launcher):
            print(script)
        return 0
    rows = collect(suite) if args.mode == "collect" else run_sequential(suite, suite_dir, not args.no_progress)
    print((Path(suite.output_dir) / "results.md").read_text())
    return 0 if all(r.get("status") == "ok" for r in rows) else 1
