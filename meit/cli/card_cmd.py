"""``meit card DIR [--json | --write | --check]``: an artifact's model card, always rendered from its JSON."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "card",
        help="print an artifact's model card, or write MODEL_CARD.md again from model_card.json",
        description="Every final/ artifact of meit train, meit pretrain and meit export carries model_card.json "
        "(schema-versioned facts: backbone and licence, encoder contract, fusion, LoRA, parameters, training data "
        "and recipe, evaluations with their controls, intended use) and MODEL_CARD.md rendered from it; meit eval "
        "adds its figures. This prints the markdown rendered from the JSON (validated against the schema).",
    )
    parser.add_argument("folder", metavar="DIR", help="an artifact folder (e.g. RUN/final)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print the validated JSON instead")
    mode.add_argument("--write", action="store_true", help="write MODEL_CARD.md again from model_card.json")
    mode.add_argument("--check", action="store_true",
                      help="exit 4 when MODEL_CARD.md differs from the rendering of model_card.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from meit.models.card import CARD_MD, read_card, regenerate_markdown
    from meit.models.card_render import render_card

    if args.write:
        print(f"wrote {regenerate_markdown(args.folder)}")
        return 0
    card = read_card(args.folder)
    if args.json:
        print(json.dumps(card, indent=2, ensure_ascii=False))
        return 0
    text = render_card(card)
    if args.check:
        md = Path(args.folder) / CARD_MD
        current = md.read_text(encoding="utf-8") if md.is_file() else None
        if current != text:
            print(f"{md} {'is missing' if current is None else 'differs from model_card.json'}: "
                  f"run `meit card {args.folder} --write`", file=sys.stderr)
            return 4
        print(f"{md} matches model_card.json")
        return 0
    print(text, end="")
    return 0
