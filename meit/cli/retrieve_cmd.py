"""``meit retrieve build|query|eval``: similar-case retrieval over a pretrained ECG–text embedding space."""

from __future__ import annotations

import argparse
import math
from typing import Any

REPORT_WIDTH = 90


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "retrieve",
        help="find similar ECGs and matching reports with a pretrained ECG–text model (`meit pretrain`)",
        description="Build an index of a prepared split's ECG and report embeddings, query it with a record or a "
        "row id, or measure recall@k of another split against it.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    build = actions.add_parser("build", help="embed a prepared split into an index folder",
                               description="Embed every ECG of a split and each distinct report text; write "
                               "embeddings.safetensors, records.jsonl and index.json to --out.")
    build.add_argument("model_dir", metavar="MODEL_DIR", help="a pretrained ECG–text model (RUN/final)")
    build.add_argument("data_path", metavar="DATA_PATH", help="a prepared dataset folder")
    build.add_argument("--split", default="train", help="split to index (default: train)")
    build.add_argument("--out", required=True, metavar="INDEX_DIR", help="index folder to write (replaced if present)")
    build.add_argument("--max-samples", type=int, default=None, help="index only the first N rows")
    build.add_argument("--batch-size", type=int, default=64)
    build.add_argument("--no-progress", action="store_true")
    build.set_defaults(func=run_build)

    query = actions.add_parser("query", help="print the nearest reports and cases for one ECG",
                               description="Query an index with a wfdb record (or a .npy array with --fs), or with "
                               "the id of a row of a prepared dataset (default: the indexed split itself).")
    query.add_argument("index_dir", metavar="INDEX_DIR")
    source = query.add_mutually_exclusive_group(required=True)
    source.add_argument("--record", metavar="PATH", help="wfdb record path (with or without .hea) or .npy array")
    source.add_argument("--id", dest="row_id", metavar="ROW_ID", help="a row id of the dataset split")
    query.add_argument("--fs", type=int, default=None, help="sampling rate of a .npy array")
    query.add_argument("--data", default=None, help="with --id: dataset to read the row from (default: the index's)")
    query.add_argument("--split", default=None, help="with --id: split to read the row from (default: the index's)")
    query.add_argument("--k", type=int, default=5, help="how many results per direction (default: 5)")
    query.add_argument("--to", choices=("report", "ecg", "both"), default="both",
                       help="retrieve distinct reports, similar indexed cases, or both (default)")
    query.add_argument("--model", default=None, help="model folder (default: the one recorded in index.json)")
    query.add_argument("--json", action="store_true", help="print JSON instead of tables")
    query.set_defaults(func=run_query)

    evaluate = actions.add_parser("eval", help="recall@k of a split's ECGs against the index, beside chance",
                                  description="ECG→report: the query's exact report among the index's distinct "
                                  "reports; ECG→ECG: an indexed case stating the same findings. Queries that are "
                                  "themselves indexed are excluded from their own candidates.")
    evaluate.add_argument("index_dir", metavar="INDEX_DIR")
    evaluate.add_argument("--queries", default=None, metavar="DATA_PATH",
                          help="prepared dataset holding the queries (default: the index's)")
    evaluate.add_argument("--split", default="validation", help="query split (default: validation)")
    evaluate.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10], help="cut-offs (default: 1 5 10)")
    evaluate.add_argument("--max-samples", type=int, default=None, help="use only the first N query rows")
    evaluate.add_argument("--model", default=None, help="model folder (default: the one recorded in index.json)")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--out", default=None, metavar="FILE", help="also write the metrics as JSON")
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.set_defaults(func=run_eval)


def _positive(value: int | None, option: str) -> None:
    from meit.errors import ConfigError

    if value is not None and value < 1:
        raise ConfigError(f"{option} must be at least 1, got {value}")


def _clean(value: Any) -> Any:
    """NaN → None so the JSON we write is valid JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """format_table for the short columns, then the report left-aligned at the end (readable when truncated)."""
    from meit.tables import format_table

    lines = format_table(rows, columns).split("\n")
    texts = ["report"] + [_truncate(str(r["report"])) for r in rows]
    return "\n".join(f"{line}  {text}" for line, text in zip(lines, texts, strict=True))


def _truncate(text: str, width: int = REPORT_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


# ------------------------------------------------------------------------------------------------


def run_build(args: argparse.Namespace) -> int:
    from meit.pretrain.data import prepared_split
    from meit.pretrain.model import EcgTextModel
    from meit.retrieval.index_build import build_index

    _positive(args.max_samples, "--max-samples")
    _positive(args.batch_size, "--batch-size")
    model = EcgTextModel.from_pretrained(args.model_dir)
    dataset = prepared_split(model.contract, args.data_path, args.split, args.max_samples)
    out = build_index(model, dataset, args.out, model_dir=args.model_dir, data_path=args.data_path,
                      split=args.split, batch_size=args.batch_size, progress=not args.no_progress)
    import json

    from meit.retrieval.index_files import META

    meta = json.loads((out / META).read_text())
    print(f"indexed {meta['rows']} ECGs and {meta['distinct_reports']} distinct reports of "
          f"{args.data_path} [{args.split}] → {out}")
    return 0


def _query_embedding(args: argparse.Namespace, index: Any) -> tuple[Any, dict[str, Any], str | None]:
    """The query's embedding, a description of the query, and the id to exclude from ECG→ECG results."""
    from meit.errors import DataError
    from meit.pretrain.data import prepared_split
    from meit.retrieval.index_build import embed_record

    if args.record is not None:
        model = index.load_model(args.model)
        return embed_record(model, args.record, args.fs), {"record": str(args.record)}, None
    row_id = str(args.row_id)
    data = args.data or index.data_path
    split = args.split or index.split
    same_rows = args.data is None and args.split is None
    if same_rows and args.model is None and row_id in index.position:
        # the row's embedding is already in the index (same model, same transform): no need to re-embed
        position = index.position[row_id]
        return index.embedding_of(row_id), {"id": row_id, "report": index.reports[position]}, row_id
    model = index.load_model(args.model)
    dataset = prepared_split(model.contract, data, split)
    ids = dataset.ids()
    if row_id not in ids:
        raise DataError(f"row id {row_id!r} is not in split '{split}' of {data} ({len(ids)} rows); "
                        "read it from another split or dataset with --split / --data")
    row = dataset[ids.index(row_id)]
    embedding = model.embed_ecgs(row["ecg"][None], batch_size=1)[0]
    exclude = row_id if row_id in index.position else None
    return embedding, {"id": row_id, "report": row["report"], "data": str(data), "split": split}, exclude


def run_query(args: argparse.Namespace) -> int:
    import json

    from meit.errors import ConfigError
    from meit.retrieval.index import RetrievalIndex

    _positive(args.k, "--k")
    if args.record is None and args.fs is not None:
        raise ConfigError("--fs only applies to --record with a .npy array")
    index = RetrievalIndex.load(args.index_dir)
    embedding, query, exclude = _query_embedding(args, index)
    directions = ("report", "ecg") if args.to == "both" else (args.to,)
    results = {to: index.query_ecg(embedding, args.k, to, exclude_id=exclude) for to in directions}
    if args.json:
        out = {"index": str(index.root), "query": query, **{to: [h.to_dict() for h in hits]
                                                           for to, hits in results.items()}}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    label = f"record {query['record']}" if "record" in query else f"id {query['id']}"
    print(f"query: {label}")
    if query.get("report"):
        print(f"  its report: {_truncate(query['report'])}")
    if "report" in results:
        print(f"\nnearest distinct reports ({index.meta['distinct_reports']} in the index):")
        rows = [{"rank": h.rank, "score": f"{h.score:.4f}", "rows": h.rows, "report": h.report}
                for h in results["report"]]
        print(_table(rows, [("rank", "rank"), ("score", "score"), ("rows", "rows")]))
    if "ecg" in results:
        note = f", {exclude} itself excluded" if exclude is not None else ""
        print(f"\nnearest indexed ECGs ({len(index)} in the index{note}):")
        rows = [{"rank": h.rank, "score": f"{h.score:.4f}", "id": h.id, "report": h.report}
                for h in results["ecg"]]
        print(_table(rows, [("rank", "rank"), ("score", "score"), ("id", "id")]))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from meit.pretrain.data import prepared_split
    from meit.retrieval.index import RetrievalIndex
    from meit.tables import format_table

    _positive(args.max_samples, "--max-samples")
    _positive(args.batch_size, "--batch-size")
    for k in args.ks:
        _positive(k, "--ks")
    index = RetrievalIndex.load(args.index_dir)
    model = index.load_model(args.model)
    data = args.queries or index.data_path
    queries = prepared_split(model.contract, data, args.split, args.max_samples)
    # ids identify rows within one prepared dataset only: exclude self-matches when the queries come from it
    same_dataset = Path(data).expanduser().resolve() == Path(index.data_path).resolve()
    metrics = index.evaluate(model, queries, args.ks, batch_size=args.batch_size, progress=not args.no_progress,
                             exclude_self=same_dataset)
    metrics = {"index_split": index.split, "index_data": index.data_path, "query_data": str(data),
               "query_split": args.split, **metrics}
    print(f"{metrics['queries']} queries from {data} [{args.split}] against {len(index)} indexed ECGs "
          f"({index.meta['distinct_reports']} distinct reports) of [{index.split}]")
    rows = []
    for key, title in (("ecg_to_report", "ECG→report"), ("ecg_to_ecg", "ECG→ECG")):
        block = metrics[key]
        for k in sorted(set(args.ks)):
            recall, chance = block[f"recall@{k}"], block[f"chance@{k}"]
            rows.append({"direction": title, "k": k, "scored": block["queries_scored"],
                         "recall": "–" if math.isnan(recall) else f"{recall:.4f}",
                         "chance": "–" if math.isnan(chance) else f"{chance:.4f}"})
    print(format_table(rows, [("direction", "direction"), ("k", "k"), ("scored", "queries scored"),
                              ("recall", "recall@k"), ("chance", "chance@k")]))
    if metrics["ecg_to_report"]["queries_scored"] == 0:
        print("ECG→report: no query's exact report text occurs in the index, so none can be scored (–).")
    if metrics["ecg_to_ecg"]["queries_scored"] == 0:
        print("ECG→ECG: no query has an indexed case stating the same findings, so none can be scored (–).")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_clean(metrics), indent=2) + "\n")
        print(f"wrote {out}")
    return 0
