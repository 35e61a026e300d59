"""``meit quickstart``: synthetic PTB-XL → ``meit prep ptbxl`` → train → evaluate → report.md.

Every stage is the one users run on real data; only the raw source is generated. The same pipeline
is also evaluated with zero training steps, so the report shows what training bought, and the trained
model again with another record's ECG and with a flat one (controls), so it shows whether the reports
follow the signal or only the report template.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from meit.config import Recipe, load_recipe
from meit.errors import ConfigError
from meit.evaluation.runner import scalar_metrics
from meit.publish import atomic_write_text, check_replaceable, mark_owned
from meit.tables import markdown_table
from meit.training.setup import resolve_mixed_precision

log = logging.getLogger(__name__)
#: bootstrap resamples of the encoder-alone findings AUROC in the report
ENCODER_BOOTSTRAP = 200
#: length of the synthetic records when the recipe leaves data.seconds to the data
SYNTH_SECONDS = 10.0
#: controls the trained model is evaluated with, and their rows in report.md
QUICKSTART_CONTROLS: dict[str, str] = {"shuffled": "trained · shuffled ECG", "zeros": "trained · zeros ECG"}


def default_recipe_path() -> Path:
    """``recipes/quickstart.yaml`` of the checkout meit runs from."""
    return Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"


def _stage(name: str) -> None:
    print(f"\n== {name} ==", flush=True)


def run_quickstart(out: str | Path, *, n_records: int = 1000, recipe_path: str | Path | None = None,
                   overrides: list[str] | None = None, workers: int = 2, progress: bool = True,
                   fresh: bool = False) -> dict[str, Any]:
    from meit.evaluation.runner import evaluate_model
    from meit.models import MeitModel
    from meit.synth.prepared import ensure_prepared_ptbxl, ensure_synthetic_raw
    from meit.training import train
    from meit.training.setup import build_model

    out = Path(out)
    recipe_file = Path(recipe_path) if recipe_path else default_recipe_path()
    if not recipe_file.is_file():
        raise ConfigError(f"quickstart recipe not found at {recipe_file}; pass --recipe PATH")
    check_replaceable(out, "quickstart run")  # never write into (or --fresh delete) a folder meit did not make
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    mark_owned(out, "quickstart run")
    raw, prepared = out / "raw", out / "prepared"
    timings: dict[str, float] = {}

    recipe = load_recipe(recipe_file, [*(overrides or []), f"output_dir={out / 'train'}", f"data.path={prepared}"])

    _stage(f"1/5 synthesise {n_records} 12-lead ECGs in PTB-XL layout → {raw}")
    t0 = time.time()
    ensure_synthetic_raw(raw, n_records, seed=recipe.seed, seconds=recipe.data.seconds or SYNTH_SECONDS,
                         workers=workers, progress=progress)
    timings["synth_s"] = time.time() - t0

    _stage(f"2/5 meit prep ptbxl (records100) → {prepared}")
    t0 = time.time()
    ensure_prepared_ptbxl(raw, prepared, seed=recipe.seed, source="records100", workers=workers, progress=progress)
    timings["prep_s"] = time.time() - t0

    _stage("3/5 evaluate the untrained pipeline (zero training steps)")
    t0 = time.time()
    untrained = build_model(recipe)
    untrained_recipe = recipe.model_copy(update={"eval": recipe.eval.model_copy(
        update={"max_samples": recipe.eval.max_samples_untrained or recipe.eval.max_samples})})
    untrained_metrics = evaluate_model(untrained, untrained_recipe, out / "untrained", progress=progress,
                                       label="untrained", controls=[])
    del untrained
    timings["eval_untrained_s"] = time.time() - t0

    first = recipe.train.encoder_stage
    before = f"encoder stage ({first.max_steps} steps × batch {first.batch_size}), then " if first else ""
    _stage(f"4/5 train: {before}{recipe.train.max_steps} steps × batch {recipe.train.batch_size} → {recipe.output_dir}")
    t0 = time.time()
    train_dir = Path(recipe.output_dir)
    if train_dir.exists() and recipe.train.resume is None:
        # a re-run trains anew (its data stages are reused); an earlier run's checkpoints would be refused
        # as another run's, so they go (inside this quickstart folder, which meit owns)
        print(f"removing the previous run's {train_dir} (data stages are reused)", flush=True)
        shutil.rmtree(train_dir)
    result = train(recipe, progress=progress)
    timings["train_s"] = time.time() - t0

    _stage("5/5 evaluate the trained model (reloaded from its artifact), then with shuffled and zero ECGs")
    t0 = time.time()
    trained = MeitModel.from_pretrained(result.final_dir)
    trained_metrics = evaluate_model(trained, recipe, out, checkpoint=str(result.final_dir), progress=progress,
                                     label="trained", controls=list(recipe.eval.controls or QUICKSTART_CONTROLS))
    encoder = score_encoder(result.final_dir, recipe, out / "encoder", progress=progress) \
        if recipe.model.finding_head else None
    timings["eval_trained_s"] = time.time() - t0

    summary = _write_summary(out, recipe, trained_metrics, untrained_metrics, result, timings, encoder)
    _write_report(out, recipe, trained, summary)
    return summary


def score_encoder(final_dir: Path, recipe: Recipe, folder: Path, *, progress: bool) -> dict[str, Any]:
    """The trained model's encoder and findings head alone, on the evaluated records' report findings, beside the
    shuffled-ECG control (``meit classify eval``): whether the encoder reads the ECG, whatever the LLM does with it.
    Written to ``folder`` (metrics.json, results.md); returns the macro figures."""
    from meit.classify.model import load_classifier
    from meit.classify.run import write_scores
    from meit.classify.scoring import evaluate_classifier

    metrics = evaluate_classifier(load_classifier(final_dir), str(recipe.data.path), recipe.eval.split,
                                  batch_size=recipe.eval.batch_size, max_samples=recipe.eval.max_samples,
                                  resamples=ENCODER_BOOTSTRAP, seed=recipe.seed, progress=progress)
    write_scores(metrics, folder)
    clean = metrics["clean"]
    return {"macro_auroc": clean["macro_auroc"], "macro_low": clean["macro_low"], "macro_high": clean["macro_high"],
            "shuffled_macro_auroc": clean["shuffled_ecg"]["macro_auroc"], "records": clean["records"],
            "findings_scored": len(metrics["labels"]) - len(clean["unscored"])}


def _write_summary(out: Path, recipe: Recipe, trained: dict[str, Any], untrained: dict[str, Any], result: Any,
                   timings: dict[str, float], encoder: dict[str, Any] | None = None) -> dict[str, Any]:
    summary = {
        **scalar_metrics(trained),
        "untrained": scalar_metrics(untrained),
        "trained": scalar_metrics(trained),
        "controls": trained.get("controls", {}),
        "grounding": trained.get("grounding", {}),
        "verification": trained.get("verification", {}),
        "clinical": trained.get("clinical", {}),
        "encoder_findings": encoder,
        "train": {"steps": result.steps, "first_loss": result.losses[0] if result.losses else None,
                  "last_loss": result.losses[-1] if result.losses else None},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "provenance": trained.get("provenance", {}),
    }
    atomic_write_text(out / "metrics.json", json.dumps(summary, indent=2))
    return summary


def model_description(recipe: Recipe, fs: int, precision: str) -> str:
    """The report's first sentence: what was trained (the non-LLM baseline has no projector, fusion or LoRA)."""
    m = recipe.model
    if m.is_encdec:
        return (f"No LLM: `{m.llm}` (a word-level decoder trained from scratch), encoder `{m.encoder}` at {fs} Hz, "
                f"training in {precision}")
    return (f"Backbone `{m.llm}`, encoder `{m.encoder}` at {fs} Hz, projector `{m.projector}`, fusion `{m.fusion}`, "
            f"LoRA r={m.lora.r}, training in {precision}")


def _write_report(out: Path, recipe: Recipe, model: Any, summary: dict[str, Any]) -> None:
    import numpy as np

    from meit.data.dataset import get_split, load_prepared
    from meit.evaluation.report import metrics_table, plot_ecg_with_reports

    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line]
    first = predictions[0]
    split = get_split(load_prepared(recipe.data.path), recipe.eval.split).with_format("numpy", columns=["ecg"],
                                                                                       output_all_columns=True)
    row = split[[str(i) for i in split["id"]].index(first["id"])]  # search the id column, not every row
    figure = plot_ecg_with_reports(np.asarray(row["ecg"]), int(row["fs"]), first["reference"], first["prediction"],
                                   out / "figures" / "example_ecg.png", title=f"test record {first['id']}")
    table = metrics_table({"untrained (0 steps)": summary["untrained"], "trained": summary["trained"],
                           **{row: summary["controls"][name] for name, row in QUICKSTART_CONTROLS.items()
                              if name in summary["controls"]}})
    examples = "\n".join(
        f"- **{p['id']}**\n  - reference: {p['reference']}\n  - generated: {p['prediction']}" for p in predictions[:5]
    )
    first = recipe.train.encoder_stage
    stage_text = (f"after an encoder stage ({first.max_steps} steps of batch {first.batch_size} on the findings the "
                  "reports state), " if first else "")
    timings = ", ".join(f"{k.removesuffix('_s')} {v:.0f} s" for k, v in summary["timings_s"].items())
    precision = "bf16 autocast" if resolve_mixed_precision(recipe) == "bf16" else "fp32"
    text = f"""# meit quickstart report

{model_description(recipe, model.contract.fs, precision)}
(`train.mixed_precision={recipe.train.mixed_precision}`); {stage_text}trained
{summary['train']['steps']} LLM-stage steps of batch {recipe.train.batch_size} on synthetic PTB-XL-layout data
(loss {summary['train']['first_loss']:.3f} → {summary['train']['last_loss']:.3f}). Scored on
{summary['provenance'].get('n', '?')} `{recipe.eval.split}` records, generated continuation only, greedy decoding
(the untrained pipeline on {summary['untrained'].get('n', '?')}).

## Metrics

{table}

{grounding_sentence(summary)}

{encoder_sentence(summary)}

{verification_sentence(summary)}

## Findings: trained, and with another record's ECG

{findings_table(out, summary)}

## One test ECG

![12-lead ECG with its reference and generated report]({figure.relative_to(out)})

## First generated reports

{examples}

Time: {timings}. Predictions: `predictions.jsonl` (trained), `untrained/predictions.jsonl`,
`controls/shuffled/predictions.jsonl`, `controls/zeros/predictions.jsonl`; model: `train/final/`, with its model card
(`train/final/MODEL_CARD.md`, this evaluation included).
"""
    atomic_write_text(out / "report.md", text)


def findings_table(out: Path, summary: dict[str, Any]) -> str:
    """Per-finding F1 of the trained model next to the shuffled control (support = reference mentions)."""
    rows = (summary.get("clinical") or {}).get("per_finding") or {}
    control_file = out / "controls" / "shuffled" / "metrics.json"
    shuffled = (json.loads(control_file.read_text()).get("clinical") or {}).get("per_finding", {}) \
        if control_file.is_file() else {}
    if not rows:
        return "(no clinical findings scored)"
    body = [[name, row["support"], row["f1"], shuffled.get(name, {}).get("f1")]
            for name, row in sorted(rows.items(), key=lambda kv: -kv[1]["support"])]
    return markdown_table(["finding", "support", "F1 trained", "F1 shuffled ECG"], body, decimals=2)


def verification_sentence(summary: dict[str, Any]) -> str:
    """The trained model's statements checked against the waveform (``eval.verify``), beside the shuffled control."""
    figures = summary.get("verification") or {}
    if not figures:
        return "Verification against the waveform: not run (eval.verify=false)."
    from meit.verify.corpus import describe

    shuffled = (summary.get("controls", {}).get("shuffled") or {}).get("verify_contradicted_share")
    control = "" if shuffled is None else f"; with another record's ECG: {100 * shuffled:.1f} % contradicted"
    return f"Trained model, {describe(figures)}{control} (`meit verify`, docs/evaluation.md)."


def encoder_sentence(summary: dict[str, Any]) -> str:
    """What the encoder alone reads (its findings head, no LLM), beside the shuffled control: with the grounding
    drops it says whether reports that ignore the ECG come from the encoder or from the LLM stage."""
    enc = summary.get("encoder_findings")
    if not enc:
        return "The encoder was not scored alone (the model has no findings head: model.finding_head=false)."

    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, int | float) else "n/a"

    interval = f" [{fmt(enc['macro_low'])}, {fmt(enc['macro_high'])}]" if enc.get("macro_low") is not None else ""
    return (f"The encoder alone (its findings head, without the LLM) reads the findings of these "
            f"{enc['records']} records' reports at macro-AUROC {fmt(enc['macro_auroc'])}{interval} over "
            f"{enc['findings_scored']} findings; with another record's ECG {fmt(enc['shuffled_macro_auroc'])} "
            "(`encoder/results.md`). An encoder near 0.5 cannot give the LLM the ECG; an encoder well above it "
            "with reports that do not follow the ECG points at the LLM stage.")


def grounding_sentence(summary: dict[str, Any]) -> str:
    """The controls in words: how much clinical F1 and METEOR the trained model loses without its own ECG."""
    def drop(value: Any) -> str:
        return f"{value:+.3f}" if isinstance(value, int | float) else "n/a"

    what = {"shuffled": "another record's ECG", "zeros": "a flat zero ECG"}
    parts = [f"with {what.get(name, name)} ({name}) clinical micro-F1 drops by "
             f"{drop(d.get('clinical_micro_f1_drop'))}, macro-F1 by {drop(d.get('clinical_macro_f1_drop'))} "
             f"and METEOR by {drop(d.get('meteor_drop'))}" for name, d in summary.get("grounding", {}).items()]
    skipped = [f"the {name} control was skipped ({c['skipped']})"
               for name, c in summary.get("controls", {}).items() if "skipped" in c]
    trained = summary["trained"]
    n_distinct = trained.get("n_distinct_reports", "?")
    distinct = (f"The trained model wrote {n_distinct} distinct report{'' if n_distinct == 1 else 's'} for "
                f"{trained.get('n', '?')} records (share {trained.get('distinct_reports', float('nan')):.2f}).")
    if not parts and not skipped:
        return distinct
    grounding = "Grounding (real minus control): " + "; ".join(parts + skipped) + "."
    return (f"{grounding} Drops near zero mean the reports do not depend on the ECG; large drops mean they "
            f"follow the signal. {distinct}")
