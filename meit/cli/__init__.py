"""The ``meit`` command: a thin face over the library.

Each subcommand lives in its own module under ``meit.cli`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` to a callable taking the parsed namespace and returning an
exit code. Heavy imports (torch, transformers) happen inside those callables so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from meit import __version__
from meit.errors import MeitError

COMMANDS: tuple[str, ...] = (
    "synth", "prep", "train", "pretrain", "eval", "score", "generate", "verify", "retrieve", "zeroshot", "bench",
    "quickstart", "export", "import-encoder", "serve", "card", "render", "classify",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meit",
        description="Instruction-tune LLMs to write clinical reports from 12-lead ECGs.",
        epilog="Exit codes: 0 ok, 1 unexpected error, 2 bad config/option, 3 bad data, "
        "4 model/checkpoint problem, 5 needs a download while offline, 6 training failure, 7 `meit prep` kept no "
        "record, 8 `meit prep` had unexpected per-record errors (its output is complete), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"meit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"meit.cli.{name.replace('-', '_')}_cmd")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling a '*' positional once an option follows it; gather stray key=value overrides
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MeitError as err:
        # one write of the whole line: under a launcher every rank shares one stderr pipe, and a write this short
        # is atomic there, while print's separate newline lets another rank's message land on the same line
        sys.stderr.write(f"meit {args.command}: error: {err}\n")
        sys.stderr.flush()
        return err.exit_code
    except KeyboardInterrupt:
        print(f"meit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
