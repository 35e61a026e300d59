"""``meit eval --checkpoint C --data D --split test --out E``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="generate reports for a split and score them (metrics.json, predictions.jsonl)",
        description="Batched generation with KV cache on a prepared dataset split, then BLEU-1..4 (corpus-level), "
        "METEOR, ROUGE-L, CIDEr-D (+ ROUGE-1/2) on the generated continuation only; optionally again with "
        "control ECGs (--control) to measure how much the reports depend on the signal.",
    )
    parser.add_argument("--checkpoint", required=True, help="a trained artifact folder (e.g. RUN/final)")
    parser.add_argument("--data", required=True, help="a prepared dataset folder")
    parser.add_argument("--split", default=None, help="split to evaluate (default: the recipe's eval.split, else test)")
    parser.add_argument("--recipe", default=None, metavar="YAML",
                        help="take decoding, scorers, controls and seeds from this recipe (e.g. the one a run or a "
                        "bench job trained with); the flags here override it")
    parser.add_argument("--out", required=True, help="output folder for metrics.json and predictions.jsonl")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--num-beams", type=int, default=None)
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N rows")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs WordNet)")
    parser.add_argument("--bertscore", action="store_true", help="also compute BERTScore with the packaged MiniLM")
    parser.add_argument("--perturb", action="append", default=[], metavar="NAME[:L1,L2]",
                        help="also evaluate under a perturbation (gaussian = MEIT's protocol, baseline, powerline, "
                        "dropout), at its default levels or the ones given; repeatable. Writes robustness.csv/md/png")
    parser.add_argument("--control", action="append", default=[], choices=["shuffled", "zeros"],
                        help="also evaluate with another record's ECG (shuffled: a derangement seeded by --seed) or "
                        "a flat zero ECG; repeatable. Writes controls/NAME/ and the controls and grounding "
                        "(real minus control) blocks of metrics.json")
    parser.add_argument("--verify", action="store_true",
                        help="check each report's statements against its record's signal: verdicts.jsonl and the "
                        "share of checkable statements the signal contradicts, overall and per finding, in "
                        "metrics.json (also for each control)")
    parser.add_argument("--seed", type=int, default=None, help="default: the recipe's seed, else 0")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run the backbone's own modelling code from its folder (off unless you pass this)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def eval_recipe(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """The recipe ``meit eval`` runs with (``--recipe`` or the defaults, then the flags) and its perturbations."""
    import json

    from meit.config import load_recipe
    from meit.evaluation.perturb import parse_perturbations

    overrides = [f"data.path={args.data}"]
    if args.split is not None or args.recipe is None:
        overrides.append(f"eval.split={args.split or 'test'}")
    if args.seed is not None or args.recipe is None:
        overrides.append(f"seed={0 if args.seed is None else args.seed}")
    for key, value in (("batch_size", args.batch_size), ("max_new_tokens", args.max_new_tokens),
                       ("num_beams", args.num_beams), ("max_samples", args.max_samples)):
        if value is not None:
            overrides.append(f"eval.{key}={value}")
    if args.sample:
        overrides.append("eval.do_sample=true")
    if args.no_meteor:
        overrides.append("eval.meteor=false")
    if args.bertscore:
        overrides.append("eval.bertscore=true")
    if args.control:
        overrides.append(f"eval.controls={json.dumps(args.control)}")
    if args.verify:
        overrides.append("eval.verify=true")
    recipe = load_recipe(args.recipe, overrides)
    return recipe, parse_perturbations(args.perturb, seed=recipe.seed)


def run(args: argparse.Namespace) -> int:
    import json

    from meit.evaluation.runner import load_and_evaluate

    recipe, specs = eval_recipe(args)
    metrics = load_and_evaluate(args.checkpoint, args.data, recipe.eval.split, args.out, recipe,
                                progress=not args.no_progress, perturbations=specs,
                                trust_remote_code=args.trust_remote_code)
    shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
    print(json.dumps(shown, indent=2))
    print(f"wrote {args.out}/metrics.json and {args.out}/predictions.jsonl")
    for name, drops in metrics.get("grounding", {}).items():
        shown_drops = ", ".join(f"{k} {v:+.4f}" for k, v in drops.items() if v is not None)
        print(f"control {name} ({args.out}/controls/{name}/): {shown_drops}")
    for name, scores in metrics.get("controls", {}).items():
        if "skipped" in scores:
            print(f"control {name} skipped: {scores['skipped']}")
    if "verification" in metrics:
        from meit.verify.corpus import describe

        print(f"{describe(metrics['verification'])} ({args.out}/verdicts.jsonl)")
    if specs:
        from pathlib import Path

        print((Path(args.out) / "robustness.md").read_text())
    return 0
