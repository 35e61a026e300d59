"""``meit classify train RECIPE [section.key=value …]`` and ``meit classify eval MODEL --data PATH``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "classify",
        help="multi-label ECG classification (PTB-XL superclasses or findings) from signals or paper images",
        description="Train an ECG encoder (signal or image, e.g. `ecg.encoder=convnext-atto-image "
        "ecg.image_mode=paper-3x4`) with a multi-label head, optionally in two stages (stage1.path: a first dataset "
        "such as rendered `meit synth` records), and score it: per-class AUROC with bootstrap intervals beside the "
        "shuffled-ECG control. Writes OUTPUT_DIR/final/ (an encoder artifact plus the head), metrics.json and "
        "results.md.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    train = actions.add_parser("train", help="train, then score on data.test_split",
                               description="e.g. `meit classify train recipes/classify_paper.yaml data.path=DATA`")
    train.add_argument("recipe", help="path to a YAML classification recipe")
    train.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--print-recipe", action="store_true", help="print the validated recipe and exit")
    train.set_defaults(func=run_train)
    score = actions.add_parser("eval", help="score a trained classifier (or a report model's encoder and findings "
                                            "head) on a split of a prepared dataset")
    score.add_argument("model", help="a classifier folder (OUTPUT_DIR/final of `meit classify train`), or a report "
                                     "model's (`meit train` with model.finding_head): its encoder and findings head "
                                     "alone, scored on the findings of each record's report")
    score.add_argument("--data", required=True, help="prepared dataset")
    score.add_argument("--split", default="test")
    score.add_argument("--out", help="folder for metrics.json and results.md (default: print only)")
    score.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
    score.add_argument("--confidence", type=float, default=0.95)
    score.add_argument("--degrade", action="append", default=[], metavar="NAME=STRENGTH",
                       help="also score pages made to look scanned, e.g. --degrade blur=0.5 (repeatable)")
    score.add_argument("--batch-size", type=int, default=64)
    score.add_argument("--no-progress", action="store_true")
    score.set_defaults(func=run_eval)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_train(args: argparse.Namespace) -> int:
    from meit.classify.config import ClassifyRecipe
    from meit.config import dump_recipe, load_recipe

    recipe = load_recipe(args.recipe, args.overrides, schema=ClassifyRecipe)
    if args.print_recipe:
        print(dump_recipe(recipe), end="")
        return 0
    from meit.classify.run import classify
    from meit.classify.scoring import results_markdown

    run = classify(recipe, progress=not args.no_progress)
    if run.metrics:
        print(results_markdown(run.metrics), end="")
        print(f"\nclassifier: {run.training.final_dir}; scores: {recipe.output_dir}/metrics.json")
    return 0


def _degrade(items: list[str]) -> dict[str, float]:
    from meit.data.image_spec import AUGMENTATIONS
    from meit.errors import ConfigError

    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            strength = float(value)
        except ValueError:
            strength = float("nan")
        if name not in AUGMENTATIONS or not 0 <= strength <= 1:
            raise ConfigError(f"--degrade {item!r}: expected NAME=STRENGTH with NAME one of {', '.join(AUGMENTATIONS)} "
                              "and STRENGTH from 0 to 1")
        out[name] = strength
    return out


def run_eval(args: argparse.Namespace) -> int:
    from meit.classify.model import load_classifier
    from meit.classify.run import write_scores
    from meit.classify.scoring import evaluate_classifier, results_markdown
    from meit.errors import ConfigError

    if not 0 < args.confidence < 1:
        raise ConfigError(f"--confidence must be between 0 and 1, got {args.confidence}")
    degrade = _degrade(args.degrade)
    model = load_classifier(args.model)
    if degrade and not model.contract.image_mode.startswith("paper-"):
        raise ConfigError("--degrade makes paper pages look scanned; this classifier reads "
                          f"{model.contract.describe()}")
    metrics = evaluate_classifier(model, args.data, args.split, batch_size=args.batch_size,
                                  resamples=max(args.bootstrap, 0), confidence=args.confidence, degrade=degrade or None,
                                  progress=not args.no_progress)
    if args.out:
        write_scores(metrics, args.out)
    print(results_markdown(metrics), end="")
    return 0
