"""``meit export --checkpoint C --out D [--merge-lora]``: a deployment copy of a trained artifact."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="re-save a trained artifact, optionally with LoRA merged into the base for deployment",
        description="Reload an artifact and write it again to --out. With --merge-lora the LoRA update is folded "
        "into the base weights (a QLoRA artifact is reloaded unquantised first), so serving needs no peft.",
    )
    parser.add_argument("--checkpoint", required=True, help="a trained artifact folder (e.g. RUN/final)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--merge-lora", action="store_true", help="fold LoRA into the base weights")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run the backbone's own modelling code from its folder (off unless you pass this)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meit.models import MeitModel

    overrides = {"quantization": "none"} if args.merge_lora else {}
    overrides["trust_remote_code"] = args.trust_remote_code
    model = MeitModel.from_pretrained(args.checkpoint, **overrides)
    out = model.save_pretrained(args.out, merge_lora=args.merge_lora)
    from meit.models.card_export import write_export_card

    card_error = write_export_card(args.checkpoint, out, model, args.merge_lora)
    print(f"wrote {out}{' (LoRA merged into the base)' if args.merge_lora else ''}"
          + ("" if card_error else " with its MODEL_CARD.md"))
    return 0
