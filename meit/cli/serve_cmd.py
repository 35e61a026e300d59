"""``meit serve --checkpoint C [--host 127.0.0.1 --port 8000] [--token T]``."""

from __future__ import annotations

import argparse
import os

TOKEN_ENV = "MEIT_SERVE_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve a trained model: HTTP API (POST /v1/report) and a web page",
        description="Load a trained artifact once and answer POST /v1/report (a wfdb record, an .npy array or "
        "JSON) with the report, its findings, verification verdicts and timing; the page at / draws the 12 "
        "leads beside them. Loopback only unless --host says otherwise, which then needs --token. "
        "Research only; not a medical device. See docs/serving.md.",
    )
    parser.add_argument("--checkpoint", required=True, help="a trained artifact folder (e.g. RUN/final)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token", default=None,
                        help=f"require 'Authorization: Bearer TOKEN' on every /v1 call (at least 16 characters; "
                        f"or set {TOKEN_ENV}, which keeps it out of the process list)")
    parser.add_argument("--insecure-no-token", action="store_true",
                        help="allow a non-loopback --host without a token (anyone who can reach it can use it)")
    parser.add_argument("--index", default=None, metavar="INDEX_DIR",
                        help="a retrieval index (meit retrieve build) for similar cases; default: the artifact's "
                        "retrieval_index/ when present")
    parser.add_argument("--index-model", default=None, help="the index's model folder (default: from index.json)")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--batch-window-ms", type=float, default=20.0,
                        help="wait this long for more requests to batch with the first (default 20)")
    parser.add_argument("--max-batch", type=int, default=8, help="rows per batch (default 8)")
    parser.add_argument("--no-batching", action="store_true", help="decode every request alone")
    parser.add_argument("--max-upload-mb", type=float, default=16.0, help="largest request body (default 16)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest recording accepted (default 60)")
    parser.add_argument("--repair-gaps", action="store_true",
                        help="repair NaN/inf runs in JSON and .npy arrays as meit prep would, instead of refusing them")
    parser.add_argument("--no-verify", action="store_true", help="skip the measurement-based verification")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run the backbone's own modelling code from its folder (off unless you pass this)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from meit.serve import build_app, build_settings, serve

    settings = build_settings(
        host=args.host, port=args.port, token=args.token or os.environ.get(TOKEN_ENV) or None,
        insecure_no_token=args.insecure_no_token, verify=not args.no_verify,
        decoding={"max_new_tokens": args.max_new_tokens, "num_beams": args.num_beams},
        batching={"enabled": not args.no_batching, "window_ms": args.batch_window_ms, "max_batch": args.max_batch},
        limits={"max_upload_bytes": int(args.max_upload_mb * 1024 * 1024), "max_seconds": args.max_seconds,
                "repair_gaps": args.repair_gaps},
    )
    app = build_app(args.checkpoint, settings, index=args.index, index_model=args.index_model,
                    trust_remote_code=args.trust_remote_code)
    serve(app, settings)
    return 0
