"""``meit quickstart --out DIR``: the whole path, end to end, on synthetic data."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "quickstart",
        help="synthesise data, prepare, train, evaluate and write a report (CPU, < 20 min)",
        description="Generate a synthetic 12-lead dataset in PTB-XL layout, prepare it with `meit prep ptbxl`, "
        "train encoder + projector + LoRA on SmolLM2-135M-Instruct, evaluate trained and untrained, "
        "and write metrics.json, predictions.jsonl, report.md and the model into --out.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=1000, help="synthetic records to generate (default 1000)")
    parser.add_argument("--recipe", default=None, help="recipe (default: recipes/quickstart.yaml)")
    parser.add_argument("--workers", type=int, default=2, help="processes for synthesis and preparation")
    parser.add_argument("--fresh", action="store_true", help="delete --out first instead of reusing finished stages")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meit.errors import ConfigError
    from meit.quickstart import run_quickstart

    if args.n < 30:
        raise ConfigError(f"--n {args.n} is too small: the quickstart needs at least 30 records for three splits")
    summary = run_quickstart(args.out, n_records=args.n, recipe_path=args.recipe, overrides=args.overrides,
                             workers=args.workers, progress=not args.no_progress, fresh=args.fresh)
    trained, untrained = summary["trained"], summary["untrained"]
    print("\nmetric      untrained   trained")
    for key in ("bleu_1", "bleu_4", "meteor", "rouge_l", "cider_d"):
        if key in trained:
            print(f"{key:<10} {untrained.get(key, float('nan')):>10.4f} {trained[key]:>9.4f}")
    print(f"\nresults in {args.out}: metrics.json, predictions.jsonl, report.md, train/final/")
    return 0
