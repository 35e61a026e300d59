"""``meit zeroshot MODEL_DIR DATA_PATH``: zero-shot AUROC per finding from prompt sets, with a bar plot."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "zeroshot",
        help="zero-shot AUROC per finding of a pretrained ECG–text model (no classifier training)",
        description="Score each ECG of a split by how much closer it lies to a finding's positive prompts than to "
        "its negative ones; AUROC against the finding labels the clinical extractor reads from the reports.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a pretrained ECG–text model (RUN/final)")
    parser.add_argument("data_path", metavar="DATA_PATH", help="a prepared dataset folder")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument("--prompts", default=None, metavar="FILE.yaml",
                        help="prompt sets finding → {positive: [...], negative: [...]} (default: the packaged set)")
    parser.add_argument("--max-samples", type=int, default=None, help="score only the first N rows")
    parser.add_argument("--min-positives", type=int, default=5,
                        help="score a finding only with at least this many positives and negatives (default: 5)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=None, metavar="DIR", help="write zeroshot.json and zeroshot_auroc.png here")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from meit.errors import ConfigError
    from meit.pretrain.data import prepared_split
    from meit.pretrain.model import EcgTextModel
    from meit.retrieval.evaluate import embed_dataset
    from meit.retrieval.zeroshot import load_prompt_sets, plot_auroc, zero_shot_report
    from meit.tables import format_table

    if args.min_positives < 1:
        raise ConfigError(f"--min-positives must be at least 1, got {args.min_positives}")
    if args.max_samples is not None and args.max_samples < 1:
        raise ConfigError(f"--max-samples must be at least 1, got {args.max_samples}")
    prompt_sets = load_prompt_sets(args.prompts)  # a bad prompt file fails before the model loads
    model = EcgTextModel.from_pretrained(args.model_dir)
    dataset = prepared_split(model.contract, args.data_path, args.split, args.max_samples)
    ecg = embed_dataset(model, dataset, batch_size=args.batch_size, progress=not args.no_progress)
    report = zero_shot_report(model, ecg, dataset.reports(), prompt_sets, args.min_positives)
    result = {"model": str(args.model_dir), "data": str(args.data_path), "split": args.split,
              "prompts": str(args.prompts) if args.prompts else "default", **report}

    rows = []
    for finding, entry in report["findings"].items():
        rows.append({"finding": finding, "auroc": "–" if entry["auroc"] is None else f"{entry['auroc']:.3f}",
                     "positives": entry["positives"], "negatives": entry["negatives"],
                     "note": entry.get("skipped", "")})
    print(f"zero-shot AUROC on {args.data_path} [{args.split}], {report['n']} ECGs, "
          f"{len(prompt_sets)} prompt sets (chance = 0.5)")
    print(format_table(rows, [("finding", "finding"), ("auroc", "AUROC"), ("positives", "positives"),
                              ("negatives", "negatives"), ("note", "note")]))
    macro = report["macro_auroc"]
    print(f"macro AUROC over {report['scored']} scored finding(s): " + ("–" if macro is None else f"{macro:.3f}"))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "zeroshot.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_auroc(report["findings"], out / "zeroshot_auroc.png",
                   f"zero-shot AUROC, {Path(args.data_path).name} [{args.split}], n={report['n']}")
        print(f"wrote {out / 'zeroshot.json'} and {out / 'zeroshot_auroc.png'}")
    return 0
