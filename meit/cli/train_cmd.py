"""``meit train RECIPE [section.key=value …]``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train encoder + projector + LoRA from a YAML recipe",
        description="Train from a YAML recipe. Any recipe key can be overridden as section.key=value, "
        "e.g. `meit train recipes/quickstart.yaml train.max_steps=50 model.fusion=prefix`. "
        "Runs as is, under `accelerate launch` (configs in recipes/accelerate/) and under torchrun.",
    )
    parser.add_argument("recipe", help="path to a YAML recipe")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--print-recipe", action="store_true", help="print the validated recipe and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meit.config import dump_recipe, load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if args.print_recipe:
        print(dump_recipe(recipe), end="")
        return 0
    import os

    from meit.training import train

    result = train(recipe, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":
        print(f"trained {result.steps} steps in {result.seconds:.0f}s; final model: {result.final_dir}")
    return 0
