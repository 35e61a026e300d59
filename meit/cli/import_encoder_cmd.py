"""``meit import-encoder KIND CHECKPOINT --out DIR``: a public encoder checkpoint → a meit encoder artifact."""

from __future__ import annotations

import argparse

#: the same names as ``meit.models.encoders.imports.KINDS`` (kept here so ``--help`` needs no torch)
KIND_CHOICES: tuple[str, ...] = ("merl-resnet", "merl-vit", "ecgfounder")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import-encoder",
        help="convert a MERL or ECGFounder checkpoint into a meit encoder artifact",
        description="Read a published encoder checkpoint (safetensors or a torch file, loaded with "
        "weights_only=True), keep the ECG encoder's tensors, check they load strictly, and write DIR/encoder.json "
        "+ DIR/encoder.safetensors with the input contract the weights were trained for. Then train with "
        "`meit train RECIPE model.encoder_checkpoint=DIR …` (the command prints the exact overrides).",
    )
    parser.add_argument("kind", choices=KIND_CHOICES, help="whose checkpoint this is")
    parser.add_argument("checkpoint", help="the upstream file (.pth / .pt / .safetensors)")
    parser.add_argument("--out", required=True, help="output folder (new, empty, or a previous encoder artifact)")
    parser.add_argument("--variant", default=None,
                        help="e.g. 18, resnet50, tiny, vit_small; default: inferred from the checkpoint's keys")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meit.errors import ModelError
    from meit.models.encoders import read_encoder_metadata
    from meit.models.encoders.artifact import contract_overrides
    from meit.models.encoders.imports import import_checkpoint

    out = import_checkpoint(args.kind, args.checkpoint, args.out, variant=args.variant)
    meta = read_encoder_metadata(out)
    if meta is None:  # pragma: no cover - import_checkpoint just wrote it
        raise ModelError(f"{out}: no encoder.json after import")
    src = meta.source
    print(f"wrote {out}: {meta.encoder}, {src.get('kept_tensors')} tensors, sha256 of the source {src.get('sha256')}")
    print(f"  trained input contract: {meta.contract.describe()}")
    if src.get("dropped_tensors"):
        groups = ", ".join(f"{g} ({n})" for g, n in src.get("dropped_groups", {}).items())
        print(f"  dropped {src['dropped_tensors']} tensors that are not the encoder's: {groups}")
        for reason, n in src.get("dropped_reasons", {}).items():
            print(f"    {n}: {reason}")
    print(f"  train with: meit train RECIPE model.encoder_checkpoint={out} "
          f"{contract_overrides(meta.encoder, meta.contract)}")
    return 0
