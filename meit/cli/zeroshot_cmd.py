"""``meit zeroshot MODEL_DIR DATA_PATH``: zero-shot AUROC per finding from prompt sets, with a bar plot."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


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


def zero_shot_report(model: Any, dataset: Any, prompt_sets: Any, min_positives: int, batch_size: int = 64,
                     progress: bool = False) -> dict[str, Any]:
    """Per-finding AUROC (None with the counts when there are too few positives or negatives) and the macro mean."""
    from meit.evaluation.clinical import extract_findings
    from meit.retrieval.evaluate import embed_dataset
    from meit.retrieval.zeroshot import auroc_per_finding, zero_shot_scores

    ecg = embed_dataset(model, dataset, batch_size=batch_size, progress=progress)
    findings = [extract_findings(r) for r in dataset.reports()]
    per_finding = auroc_per_finding(zero_shot_scores(model, ecg, prompt_sets), findings, min_positives)
    for entry in per_finding.values():
        if entry["auroc"] is None:
            short = [f"{side} {entry[side]} < {min_positives}" for side in ("positives", "negatives")
                     if entry[side] < min_positives]
            entry["skipped"] = "too few " + " and ".join(short)
    scored = [v["auroc"] for v in per_finding.values() if v["auroc"] is not None]
    return {"n": len(findings), "min_positives": min_positives, "scored": len(scored),
            "macro_auroc": sum(scored) / len(scored) if scored else None, "findings": per_finding}


def plot_auroc(per_finding: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Bars of AUROC per finding, chance line at 0.5; unscored findings keep their slot, marked '–'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_finding)
    values = [per_finding[n]["auroc"] if per_finding[n]["auroc"] is not None else 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(names) + 1.5), 4.0))
    ax.bar(range(len(names)), values, color="tab:blue")
    for position, name in enumerate(names):
        if per_finding[name]["auroc"] is None:  # too few positives/negatives: shown, not dropped
            ax.text(position, 0.02, "–", ha="center", va="bottom", fontsize=10)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{n} (n+={per_finding[n]['positives']})" for n in names], rotation=60, ha="right",
                       fontsize=7)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("AUROC")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import json

    from meit.errors import ConfigError
    from meit.pretrain.data import prepared_split
    from meit.pretrain.model import EcgTextModel
    from meit.retrieval.zeroshot import load_prompt_sets
    from meit.tables import format_table

    if args.min_positives < 1:
        raise ConfigError(f"--min-positives must be at least 1, got {args.min_positives}")
    if args.max_samples is not None and args.max_samples < 1:
        raise ConfigError(f"--max-samples must be at least 1, got {args.max_samples}")
    prompt_sets = load_prompt_sets(args.prompts)  # a bad prompt file fails before the model loads
    model = EcgTextModel.from_pretrained(args.model_dir)
    dataset = prepared_split(model.contract, args.data_path, args.split, args.max_samples)
    report = zero_shot_report(model, dataset, prompt_sets, args.min_positives, args.batch_size,
                              progress=not args.no_progress)
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
