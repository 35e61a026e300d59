"""``meit pretrain RECIPE [section.key=value …]``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pretrain",
        help="contrastive ECG–report pretraining of an ECG encoder",
        description="Pretrain an ECG encoder against report text (symmetric InfoNCE, optional masked-signal "
        "reconstruction) from a YAML recipe, e.g. `meit pretrain recipes/pretrain_synthetic.yaml`. Writes "
        "OUTPUT_DIR/final/ (use it as model.encoder_checkpoint in `meit train`, or with `meit retrieve` / "
        "`meit zeroshot`) and OUTPUT_DIR/metrics.json (recall@k, zero-shot AUROC). Runs as is, under "
        "`accelerate launch` and under torchrun, like `meit train`.",
    )
    parser.add_argument("recipe", help="path to a YAML pretraining recipe")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-eval", action="store_true", help="skip the final self-evaluation (metrics.json)")
    parser.add_argument("--print-recipe", action="store_true", help="print the validated recipe and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meit.config import dump_recipe, load_recipe
    from meit.pretrain.config import PretrainRecipe

    recipe = load_recipe(args.recipe, args.overrides, schema=PretrainRecipe)
    if args.print_recipe:
        print(dump_recipe(recipe), end="")
        return 0

    from meit.retrieval.pretraining import pretrain_and_evaluate
    from meit.tables import format_table

    result = pretrain_and_evaluate(recipe, progress=not args.no_progress, evaluate=not args.no_eval)
    if not result.main_process:
        return 0
    print(f"pretrained {result.steps} steps in {result.seconds:.0f}s; encoder artifact: {result.final_dir}")
    if result.metrics:
        print(summary_table(result.metrics, format_table))
    return 0


def summary_table(metrics: dict, format_table) -> str:
    """Recall@k beside chance for both retrieval directions, then zero-shot AUROC per finding."""
    rows = []
    for direction in ("ecg_to_report", "ecg_to_ecg"):
        block = metrics.get(direction, {})
        for key, value in block.items():
            if key.startswith("recall@"):
                k = key.split("@")[1]
                rows.append({"task": direction.replace("_", " "), "k": k, "recall": f"{value:.3f}",
                             "chance": f"{block[f'chance@{k}']:.3f}"})
    lines = [format_table(rows, [("task", "retrieval"), ("k", "k"), ("recall", "recall"), ("chance", "chance")])]
    shots = [{"finding": f, "auroc": "-" if v["auroc"] is None else f"{v['auroc']:.3f}",
              "positives": v["positives"], "negatives": v["negatives"]}
             for f, v in metrics.get("zero_shot", {}).items() if v["positives"]]
    if shots:
        lines.append(format_table(shots, [("finding", "zero-shot finding"), ("auroc", "AUROC"),
                                          ("positives", "positives"), ("negatives", "negatives")]))
    return "\n\n".join(lines)
