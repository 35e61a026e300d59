"""``meit generate --checkpoint C --ecg RECORD [--instruction TEXT]``."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "generate",
        help="print the report a trained model writes for one ECG",
        description="Read one ECG (a wfdb record path, or a .npy 12 × T or T × 12 array in mV with --fs) as "
        "`meit prep` would (units checked, gaps repaired; see docs/data.md) and print the report.",
    )
    parser.add_argument("--checkpoint", required=True, help="a trained artifact folder (e.g. RUN/final)")
    parser.add_argument("--ecg", required=True, help="wfdb record path (with or without .hea) or .npy array")
    parser.add_argument("--fs", type=int, default=None, help="sampling rate of a .npy array")
    parser.add_argument("--instruction", default=None, help="ask something else than the default instruction")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run the backbone's own modelling code from its folder (off unless you pass this)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meit.inference.generation import DecodingSettings, generate_for_signal
    from meit.models import MeitModel
    from meit.records import read_ecg

    signal, fs, repairs = read_ecg(args.ecg, args.fs)  # prep's reader and repair policy
    if repairs:
        print(f"meit generate: {args.ecg} was repaired as prep would: {'; '.join(repairs)}", file=sys.stderr)
    model = MeitModel.from_pretrained(args.checkpoint, trust_remote_code=args.trust_remote_code)
    settings = DecodingSettings(max_new_tokens=args.max_new_tokens, num_beams=args.num_beams)
    max_length = getattr(getattr(model, "cfg", None), "max_length", 128)
    print(generate_for_signal(model, signal, fs, instruction=args.instruction, settings=settings,
                              max_length=max_length))
    return 0
