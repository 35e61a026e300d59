"""``meit bench SUITE.yaml``: compare backbones; ``meit bench NAME …``: any benchmark of ``python -m meit.bench``."""

from __future__ import annotations

import argparse
import textwrap


def register(sub: argparse._SubParsersAction) -> None:
    from meit.bench.registry import listing
    from meit.bench.suite_cli import DESCRIPTION, add_options

    parser = sub.add_parser(
        "bench",
        help="train and evaluate every backbone of a suite (CSV, markdown table, plots), or run a named benchmark",
        description=textwrap.fill(DESCRIPTION, 100) + "\n\n" + textwrap.fill(
            "`meit bench NAME [options]` runs a named benchmark instead, exactly as `python -m meit.bench NAME "
            "[options]`; `meit bench suite SUITE.yaml` is the suite again. A registered name wins over a file "
            "of the same name (write ./NAME for the file).", 100),
        epilog="benchmarks (meit bench NAME --help for their options):\n" + listing(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", nargs="?", metavar="SUITE.yaml|NAME",
                        help="a suite YAML, or a benchmark name (--list); no target lists them")
    parser.add_argument("options", nargs=argparse.REMAINDER,
                        help="the suite's options below, or the named benchmark's own")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    add_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from meit.bench import suite_cli
    from meit.bench.registry import BENCHMARKS, listing
    from meit.errors import ConfigError

    given = [f"--{key.replace('_', '-')}" for key, default in suite_cli.OPTION_DEFAULTS.items()
             if getattr(args, key) != default]
    if args.list or args.target is None:
        if given and not args.list:
            raise ConfigError(f"{' '.join(given)}: name the suite YAML (meit bench SUITE.yaml {given[0]} …)")
        print(f"benchmarks (meit bench NAME [options], or python -m meit.bench NAME [options]):\n{listing()}")
        return 0
    if args.target in BENCHMARKS:
        if given:
            raise ConfigError(f"{' '.join(given)} before {args.target!r}: a named benchmark takes its options "
                              f"after its name (meit bench {args.target} --help)")
        return BENCHMARKS[args.target].run(args.options)
    if Path(args.target).suffix not in (".yaml", ".yml") and not Path(args.target).exists():
        raise ConfigError(f"{args.target!r} is neither a benchmark ({', '.join(BENCHMARKS)}) nor a suite YAML")
    # the original form, `meit bench SUITE.yaml [options]`: suite options may come before or after the YAML
    before = argparse.Namespace(**{key: getattr(args, key) for key in suite_cli.OPTION_DEFAULTS})
    return suite_cli.run(suite_cli.build_parser("meit bench").parse_args([args.target, *args.options],
                                                                         namespace=before))
