"""The ``suite`` benchmark's command line: run, emit or collect the backbones of a suite YAML.

Shared by ``meit bench SUITE.yaml`` and ``python -m meit.bench suite SUITE.yaml``. Only argparse is
imported here, so that building the ``meit`` parser stays instant; the runner is imported when a
suite runs.
"""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Run a benchmark suite (e.g. eval/suites/cpu.yaml): for each backbone train then evaluate, "
    "in sequence here (--mode run), or write one job script per backbone for a cluster (--mode emit), "
    "then gather results (--mode collect). Results: OUTPUT_DIR/results.csv, results.md, figures/."
)
#: the suite options and their defaults: ``meit bench`` accepts them before the suite YAML as well
OPTION_DEFAULTS: dict[str, object] = {"mode": "run", "launcher": "accelerate launch", "only": None,
                                      "no_progress": False}


def add_options(parser: argparse.ArgumentParser) -> None:
    """Every suite option but the YAML itself."""
    parser.add_argument("--mode", choices=["run", "emit", "collect"], default=OPTION_DEFAULTS["mode"])
    parser.add_argument("--launcher", default=OPTION_DEFAULTS["launcher"],
                        help="launcher prefix for --mode emit (default: 'accelerate launch')")
    parser.add_argument("--only", nargs="*", default=OPTION_DEFAULTS["only"],
                        help="run only these backbones of the suite (the other rows of an earlier run stay in "
                             "results.md)")
    parser.add_argument("--no-progress", action="store_true")


def build_parser(prog: str = "python -m meit.bench suite") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("suite", help="suite YAML")
    add_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run, emit or collect ``args.suite``; 1 when any backbone did not finish ok."""
    from pathlib import Path

    from meit.bench.runner import Kept, collect, emit_jobs, run_sequential
    from meit.bench.suite import load_suite
    from meit.errors import ConfigError

    suite, suite_dir = load_suite(args.suite)
    kept = None
    if args.only:
        unknown = sorted(set(args.only) - {b.name for b in suite.backbones})
        if unknown:
            raise ConfigError(f"--only names backbones not in the suite: {unknown}")
        kept = Kept.read(suite)  # the other rows of an earlier run stay in results.md
        suite = suite.model_copy(update={"backbones": [b for b in suite.backbones if b.name in args.only]})
    if args.mode == "emit":
        for script in emit_jobs(suite, suite_dir, args.launcher):
            print(script)
        return 0
    if args.mode == "collect":
        rows = collect(suite, kept)
    else:
        rows = run_sequential(suite, suite_dir, not args.no_progress, kept)
    print((Path(suite.output_dir) / "results.md").read_text())
    return 0 if all(r.get("status") == "ok" for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
