"""Does the model learn to read the ECG? ``python -m meit.bench grounding``.

One longer run of the shipped recipe (by default SmolLM2-135M-Instruct with MEIT's kv fusion on the
quickstart's synthetic data): the encoder stage, then the LLM stage with the findings of generated
validation reports scored every ``--eval-every`` steps (the learning curve), then the test split with its
shuffled and zeros controls. Prints and writes the per-finding F1 table, the curve (CSV + PNG) and
``summary.json``. Sized for about an hour on 2 CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from meit.tables import format_table, write_csv

CONTROLS = ("shuffled", "zeros")


def learning_curve(log_file: Path) -> list[dict[str, float]]:
    """Per evaluation in a train.jsonl: step, validation loss, and the findings micro/macro F1 and distinct share
    of the validation reports generated then (the ``samples`` the loop logs), scored here: training does not
    score."""
    from meit.evaluation.scoring import report_diversity
    from meit.findings import extract_findings, score_finding_sets
    from meit.training.logs import read_jsonl

    curve = []
    for record in read_jsonl(log_file):
        samples = record.get("samples")
        if not samples:
            continue
        scores = score_finding_sets((extract_findings(r["prediction"]) for r in samples),
                                    (extract_findings(r["reference"]) for r in samples))
        curve.append({"step": record["step"], "val_loss": record.get("val_loss"),
                      "val_findings_micro_f1": scores["micro_f1"], "val_findings_macro_f1": scores["macro_f1"],
                      "val_distinct_reports": report_diversity(r["prediction"] for r in samples)["distinct_reports"]})
    return curve


def reference_ceiling(rows: list[dict[str, Any]], draws: int = 20) -> dict[str, float] | None:
    """Clinical micro/macro-F1 of reports re-drawn from each synthetic record's ground truth against its reference
    (mean and SD over ``draws`` seeds): what a perfect reader that words like the generator scores. ``None`` when
    the rows carry no synthetic ground truth (real data)."""
    import statistics

    from meit.findings import extract_findings, score_finding_sets
    from meit.synth.ceiling import has_truth, redrawn_reports

    if not rows or not has_truth(rows[0]):
        return None
    references = [extract_findings(str(row["report"])) for row in rows]
    micro, macro = [], []
    for seed in range(draws):
        scores = score_finding_sets((extract_findings(t) for t in redrawn_reports(rows, seed)), references)
        micro.append(scores["micro_f1"])
        macro.append(scores["macro_f1"])
    return {"clinical_micro_f1": statistics.mean(micro), "clinical_micro_f1_sd": statistics.stdev(micro),
            "clinical_macro_f1": statistics.mean(macro), "clinical_macro_f1_sd": statistics.stdev(macro),
            "draws": draws, "n": len(rows)}


def per_finding_rows(real: dict[str, Any], controls: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per finding of the references: support, precision/recall/F1 with the real ECG, F1 per control."""
    table = real["clinical"]["per_finding"]
    rows = []
    for name, row in sorted(table.items(), key=lambda kv: -kv[1]["support"]):
        if not row["support"]:
            continue
        rows.append({"finding": name, "support": row["support"], "precision": round(row["precision"], 3),
                     "recall": round(row["recall"], 3), "f1": round(row["f1"], 3),
                     **{f"f1_{c}": round(m["clinical"]["per_finding"].get(name, {}).get("f1", 0.0), 3)
                        for c, m in controls.items()}})
    return rows


def plot_learning_curve(curve: list[dict[str, float]], controls: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    steps = [r["step"] for r in curve]
    ax.plot(steps, [r["val_findings_macro_f1"] for r in curve], marker="o", label="macro-F1 (validation)")
    ax.plot(steps, [r["val_findings_micro_f1"] for r in curve], marker="s", label="micro-F1 (validation)")
    for (name, value), style in zip(controls.items(), (":", "-."), strict=False):
        ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=f"test macro-F1, {name} ECG")
    ax.set_xlabel("LLM-stage optimizer step")
    ax.set_ylabel("clinical findings F1")
    ax.set_ylim(0, 1)
    ax.set_title("What the generated reports state, against the reference")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meit.bench grounding", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path(__file__).resolve().parents[2] / "recipes" /
                        "quickstart.yaml")
    parser.add_argument("--data", type=Path, help="a prepared dataset (default: synthesise --n records)")
    parser.add_argument("--n", type=int, default=1000, help="synthetic records when --data is not given")
    parser.add_argument("--steps", type=int, default=500, help="LLM-stage steps")
    parser.add_argument("--encoder-steps", type=int, default=600, help="encoder-stage steps")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--val-samples", type=int, default=48, help="validation reports generated per evaluation")
    parser.add_argument("--test-samples", type=int, default=96)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_grounding"))
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. model.fusion=prefix")
    args = parser.parse_args(argv)

    from meit.config import load_recipe
    from meit.data.dataset import get_split, load_prepared
    from meit.evaluation.runner import evaluate_model
    from meit.models import MeitModel
    from meit.synth.prepared import synthetic_prepared
    from meit.training import train
    from meit.training.setup import resolve_mixed_precision

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    data = args.data or synthetic_prepared(args.out / "data", args.n, seed=42, workers=2)
    recipe = load_recipe(args.recipe, [
        f"data.path={data}", f"output_dir={args.out / 'train'}", f"train.max_steps={args.steps}",
        f"train.encoder_stage.max_steps={args.encoder_steps}", f"train.eval_every={args.eval_every}",
        f"train.sample_reports={args.val_samples}", f"data.max_eval_samples={args.val_samples}",
        "train.save_every=null", "train.trackers=[]", f"eval.max_samples={args.test_samples}",
        f"eval.controls=[{', '.join(CONTROLS)}]", *args.overrides])
    result = train(recipe, progress=True)
    trained_s = time.time() - started
    model = MeitModel.from_pretrained(result.final_dir)
    real = evaluate_model(model, recipe, args.out / "eval", checkpoint=str(result.final_dir), label="test")
    controls = {name: json.loads((args.out / "eval" / "controls" / name / "metrics.json").read_text())
                for name in CONTROLS}

    curve = learning_curve(Path(recipe.output_dir) / "logs" / "train.jsonl")
    write_csv(curve, args.out / "learning_curve.csv")
    plot_learning_curve(curve, {n: m["clinical_macro_f1"] for n, m in controls.items()},
                        args.out / "learning_curve.png")
    split = get_split(load_prepared(data), recipe.eval.split)
    scored_rows = split.select(range(min(len(split), args.test_samples))).remove_columns("ecg").to_list()
    ceiling = reference_ceiling(scored_rows)
    findings = per_finding_rows(real, controls)
    write_csv(findings, args.out / "per_finding.csv")
    summary = {
        "recipe": str(args.recipe), "overrides": args.overrides, "data": str(data),
        "encoder_steps": args.encoder_steps, "steps": result.steps, "train_s": round(trained_s, 1),
        "precision": resolve_mixed_precision(recipe),
        "total_s": round(time.time() - started, 1),
        "test": {k: real[k] for k in ("clinical_micro_f1", "clinical_macro_f1", "meteor", "bleu_4", "rouge_l",
                                      "distinct_reports", "n") if k in real},
        "controls": {n: {k: m[k] for k in ("clinical_micro_f1", "clinical_macro_f1", "meteor", "distinct_reports")
                         if k in m} for n, m in controls.items()},
        "grounding": real.get("grounding", {}),
        "reference_ceiling": ceiling,
        "learning_curve": curve,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))

    rows = [{"ecg": "real", **summary["test"]}] + [{"ecg": n, **m} for n, m in summary["controls"].items()]
    if ceiling is not None:
        rows.append({"ecg": f"ceiling: reports re-drawn from the truth ({ceiling['draws']} draws)",
                     "clinical_micro_f1": ceiling["clinical_micro_f1"],
                     "clinical_macro_f1": ceiling["clinical_macro_f1"]})
    rows = [{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
    curve_rows = [{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()} for row in curve]
    print(format_table(rows, [("ecg", "ECG"), ("clinical_micro_f1", "micro-F1"), ("clinical_macro_f1", "macro-F1"),
                              ("meteor", "METEOR"), ("distinct_reports", "distinct")]))
    print()
    print(format_table(findings, [("finding", "finding"), ("support", "support"), ("precision", "P"),
                                  ("recall", "R"), ("f1", "F1"),
                                  *[(f"f1_{c}", f"F1 {c}") for c in CONTROLS]]))
    print()
    print(format_table(curve_rows, [("step", "step"), ("val_loss", "val loss"), ("val_findings_micro_f1", "micro-F1"),
                               ("val_findings_macro_f1", "macro-F1"), ("val_distinct_reports", "distinct")]))
    print(f"\n{summary['total_s'] / 60:.1f} min in all; {args.out / 'summary.json'}, per_finding.csv, "
          "learning_curve.csv/.png")
    return 0
