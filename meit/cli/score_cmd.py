"""`meit score`: score any ``predictions.jsonl`` exactly as ``meit eval`` does, so external systems
(another model, a published output file) get comparable numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meit.hashing import file_sha256

log = logging.getLogger(__name__)

#: How many skipped lines are listed in the output file (all are counted).
MAX_LISTED_ERRORS = 100

PROTOCOL = {
    "bleu_rouge_l_cider_d": "pycocoevalcap 1.2 over the whole set as {id: [text]}, text tokenised by "
    "re.sub(' +', ' ', text.replace('.', ' .')); Cider() is CIDEr-D, document frequencies from references",
    "meteor": "nltk meteor_score([tok(ref)], tok(pred)) mean over pairs; tok = regex sentence split + "
    "NLTKWordTokenizer (offline word_tokenize); WordNet 3.0",
    "rouge_1_2": "rouge_score F-measure, default tokenizer, no stemming, mean over pairs",
    "bertscore_f1": "bert-score, packaged all-MiniLM-L6-v2 layer 6, no idf, no rescaling, mean over pairs",
}


ALWAYS_DESCRIBED = ("bleu_rouge_l_cider_d", "rouge_1_2")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "score",
        help="score a predictions.jsonl ({id, prediction, reference} lines) with the report metrics",
        description="Corpus-level BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (MEIT protocol), ROUGE-1/2, optional "
        "BERTScore, and clinical finding P/R/F1, for any file of {\"id\", \"prediction\", \"reference\"} "
        "JSON lines. Bad lines are skipped, counted and listed in the output.",
    )
    parser.add_argument("--predictions", required=True, type=Path, help="JSON-lines file to score")
    parser.add_argument("--out", required=True, type=Path, help="where to write metrics JSON")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (no WordNet needed)")
    parser.add_argument("--bertscore", action="store_true", help="add BERTScore F1 (packaged MiniLM, slow)")
    parser.add_argument(
        "--clinical", action=argparse.BooleanOptionalAction, default=True,
        help="clinical finding precision/recall/F1 (default: on)",
    )
    parser.set_defaults(func=run)


def headline_table(result: dict[str, Any]) -> str:
    """A small two-column table of the headline numbers."""
    from meit.tables import cell, format_table

    rows = [{"metric": k, "value": cell(v)} for k, v in result.items() if isinstance(v, float)]
    rows.append({"metric": "n", "value": str(result["n"])})
    return format_table(rows, [("metric", "metric"), ("value", "value")], left=1)


def run(args: argparse.Namespace) -> int:
    from meit import __version__
    from meit.errors import DataError
    from meit.evaluation.io import read_predictions
    from meit.evaluation.scoring import score_reports
    from meit.publish import atomic_write_text

    data = read_predictions(args.predictions)
    for err in data.errors[:10]:
        log.warning("%s: %s", args.predictions, err)
    if len(data.errors) > 10:
        log.warning("%s: %d more bad lines (listed in %s)", args.predictions, len(data.errors) - 10, args.out)
    if not data.records:
        raise DataError(f"{args.predictions}: no valid lines to score ({len(data.errors)} bad)")
    preds, refs = data.predictions(), data.references()
    result = score_reports(preds, refs, meteor=not args.no_meteor, bertscore=args.bertscore, clinical=args.clinical)
    result["bad_lines"] = len(data.errors)
    result["bad_line_details"] = [
        {"line": e.line, "error": e.message} for e in data.errors[:MAX_LISTED_ERRORS]
    ]
    result["provenance"] = {
        "meit_version": __version__,
        "command": "meit score",
        "predictions": str(args.predictions),
        "predictions_sha256": file_sha256(args.predictions),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "protocol": {k: v for k, v in PROTOCOL.items() if k in result or k in ALWAYS_DESCRIBED},
    }
    atomic_write_text(args.out, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(headline_table(result))
    if data.errors:
        print(f"skipped {len(data.errors)} bad line(s); see {args.out}", file=sys.stderr)
    return 0
