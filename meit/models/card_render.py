"""``MODEL_CARD.md`` from ``model_card.json``: the one renderer, so the markdown never says what the JSON does not.

Tables go through :mod:`meit.tables`; every figure shown is read from the card, and evaluation figures
carry the run (time, command) that produced them and stand beside their shuffled-ECG / chance controls.
"""

from __future__ import annotations

import json
from typing import Any

from meit.tables import cell, markdown_table

#: metrics shown first, in this order (any other scalar follows alphabetically)
_METRIC_ORDER = ("n", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d", "rouge_1", "rouge_2",
                 "bertscore_f1", "clinical_micro_f1", "clinical_macro_f1", "clinical_micro_precision",
                 "clinical_micro_recall", "distinct_reports", "n_distinct_reports", "verify_contradicted_share")


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else cell(value)


def _kv_table(rows: list[tuple[str, Any]]) -> str:
    """A two-column table of the rows that have a value ("|" escaped: free text must not split a row)."""
    return markdown_table(["", ""], [(k, str(v).replace("|", "\\|") if isinstance(v, str) else v)
                                     for k, v in rows if v is not None and v != ""], left=2)


def _model_section(model: dict[str, Any]) -> str:
    enc = model["encoder"]
    params = model["parameters"]
    rows: list[tuple[str, Any]] = []
    backbone = model.get("backbone")
    if backbone:
        rows += [("backbone", f"`{backbone['name']}` ({backbone['family']}, from `{backbone['source']}`)"),
                 ("backbone licence", backbone["licence"])]
    text = model.get("text_encoder")
    if text:
        rows += [("text encoder", f"`{text['name']}` ({_count(text['parameters'])} parameters)"),
                 ("text encoder licence", text["licence"])]
    rows += [("ECG encoder", f"`{enc['name']}`" + (f" from `{enc['checkpoint']}`" if enc.get("checkpoint") else
                                                      " (trained from scratch)")),
             ("encoder input", enc["description"]),
             ("lead order", ", ".join(enc["lead_names"]))]
    if enc.get("checkpoint_source"):
        rows.append(("encoder checkpoint source", json.dumps(enc["checkpoint_source"], sort_keys=True)))
    fusion = model.get("fusion")
    if fusion:
        rows.append(("fusion", ", ".join(f"{k} {v}" for k, v in fusion.items())))
    decoder = model.get("decoder")
    if decoder:
        rows.append(("decoder", ", ".join(f"{k} {v}" for k, v in decoder.items())))
    projector = model.get("projector")
    if projector:
        rows.append(("projector", ", ".join(f"{k} {v}" for k, v in projector.items())))
    adaptation = model.get("adaptation")
    if adaptation:
        method = adaptation["method"]
        if method in ("lora", "merged-lora"):
            detail = (f"LoRA r={adaptation['r']}, alpha={cell(adaptation['alpha'], 2)}, dropout="
                      f"{cell(adaptation['dropout'], 2)}, targets {', '.join(adaptation['targets'] or [])}"
                      + (" (merged into the base weights)" if method == "merged-lora" else ""))
        else:
            detail = {"full": "full fine-tuning of the LLM", "none": "none (the LLM is frozen)"}[method]
        rows.append(("LLM adaptation", detail))
    rows += [("quantisation", model.get("quantisation", "none")), ("dtype", model.get("dtype")),
             ("parameters (total)", _count(params["total"])),
             ("parameters (trained)", _count(params.get("trainable")))]
    parts = ", ".join(f"{k} {_count(v)}" for k, v in params.get("by_part", {}).items())
    rows.append(("parameters by part", parts))
    return "## Model\n\n" + _kv_table(rows)


def _data_section(data: dict[str, Any]) -> str:
    synthetic = {True: "yes", False: "no", None: "unknown"}[data.get("synthetic")]
    if data.get("synthetic_evidence"):
        synthetic += f" ({data['synthetic_evidence']})"
    languages = ", ".join(f"{k} {v}" for k, v in data.get("languages", {}).items() if v)
    rows = [("dataset", f"`{data['name']}` at `{data.get('path')}`"), ("source", data.get("source")),
            ("synthetic", synthetic), ("reports", data.get("report")),
            ("report languages", f"{languages} (of {data.get('languages_sampled', 0)} training reports read)"
             if languages else None),
            ("manifest.json sha256", f"`{data.get('manifest_sha256')}`"),
            ("content hash", f"`{data['content_hash']}`" if data.get("content_hash") else None),
            ("splits used", ", ".join(f"{k} `{v}`" for k, v in data.get("used_splits", {}).items() if v)),
            ("max_train_samples", data.get("max_train_samples"))]
    splits = markdown_table(["split", "records"], [(k, _count(v)) for k, v in data.get("splits", {}).items()])
    return "## Training data\n\n" + _kv_table(rows) + "\n\n" + splits


def _training_section(training: dict[str, Any] | None, note: str) -> str:
    if not training:
        return "## Training\n\n" + (note or "Not recorded.")
    hardware = training.get("hardware", {})
    hw = ", ".join(f"{k} {v}" for k, v in hardware.items() if v not in (None, "", []))
    epochs = training.get("epochs")
    rows = [("stage", training.get("stage")),
            ("optimizer steps", _count(training["steps"])
             + ("" if training["steps_this_session"] == training["steps"] else
                f" ({training['steps_this_session']} in the last session, resumed)")),
            ("epochs", f"{epochs:.2f}" if isinstance(epochs, float) else epochs),
            ("samples seen", _count(training.get("samples_seen"))),
            ("final training loss", cell(training.get("final_loss"))),
            ("wall time (training loop)", f"{training['wall_seconds']:.0f} s"),
            ("processes", training["processes"]), ("mixed precision", training.get("mixed_precision")),
            ("hardware", hw), ("seed", training["seed"]),
            ("recipe sha256 (run identity)", f"`{training['recipe_sha256']}`")]
    out = "## Training\n\n" + _kv_table(rows)
    out += ("\n\nThe full resolved recipe is `training.recipe` in `model_card.json` (and `recipe.yaml` beside it); "
            "its hash is the run identity every checkpoint of the run records.")
    if training.get("data"):
        out += "\n\n" + _data_section(training["data"])
    return out


def _metric_rows(metrics: dict[str, Any]) -> list[str]:
    first = [k for k in _METRIC_ORDER if k in metrics]
    return first + sorted(k for k in metrics if k not in first)


def _evaluation(key: str, entry: dict[str, Any], note: str) -> str:
    run, data = entry["run"], entry["dataset"]
    lines = [f"### `{key}`", "",
             f"Run {run['timestamp']}: `{run['command']}`" + (f" → `{run['out']}`" if run.get("out") else "") + ".",
             f"Dataset `{data.get('name')}` split `{data.get('split')}`, {data.get('n', '?')} records; "
             f"manifest.json sha256 `{data.get('manifest_sha256')}`."]
    if note:
        lines.append(note)
    if entry.get("decoding"):
        lines.append("Decoding: " + ", ".join(f"{k} {v}" for k, v in entry["decoding"].items()) + ".")
    lines.append("")
    controls = {name: c for name, c in entry.get("controls", {}).items() if "skipped" not in c}
    header = ["metric", "model", *(f"{name} control" for name in controls)]
    metrics = entry["metrics"]
    rows = [[k, metrics[k], *(c.get(k) for c in controls.values())] for k in _metric_rows(metrics)]
    lines.append(markdown_table(header, rows))
    skipped = {name: c["skipped"] for name, c in entry.get("controls", {}).items() if "skipped" in c}
    for name, reason in skipped.items():
        lines.append(f"\nThe {name} control was skipped: {reason}.")
    if not entry.get("controls"):
        lines.append("\nNo control was run: these figures do not show whether the output follows the ECG.")
    grounding = entry.get("grounding", {})
    if grounding:
        drops = sorted({k for d in grounding.values() for k in d})
        lines += ["", "Drop from the real ECG to each control (real minus control; near zero: the output does not "
                  "follow the signal):", "",
                  markdown_table(["control", *drops], [[name, *(d.get(k) for k in drops)]
                                                       for name, d in grounding.items()])]
    protocol = entry["protocol"]
    lines += ["", "Protocol: " + "; ".join(f"{k}: {v}" for k, v in protocol.items()) + "."]
    return "\n".join(lines)


def _evaluations_section(card: dict[str, Any]) -> str:
    evaluations = card.get("evaluations") or {}
    if not evaluations:
        return ("## Evaluation\n\nNot evaluated yet: `meit eval --checkpoint THIS_FOLDER --data D --split test "
                "--out E --control shuffled` adds its figures here.")
    derived = card.get("derived_from") or {}
    note = derived.get("evaluations_note", "")
    return "## Evaluation\n\n" + "\n\n".join(_evaluation(k, v, note) for k, v in sorted(evaluations.items()))


def _use_section(use: dict[str, Any]) -> str:
    lines = ["## Intended use and limits", "", use["use"], "", "Not for:", ""]
    lines += [f"- {item}" for item in use["not_for"]]
    lines += ["", "Limits:", ""] + [f"- {item}" for item in use["limits"]]
    return "\n".join(lines)


def render_card(card: dict[str, Any]) -> str:
    """The markdown of a validated card (``meit.models.card.validate_card`` output)."""
    model = card["model"]
    kind = {"meit-model": "ECG-to-report model", "meit-ecg-text": "ECG–text encoder (contrastive pretraining)"}
    written = card["written_by"]
    parts = [f"# Model card: {card['name']}",
             f"{kind[model['kind']]}. **{card['intended_use']['use'].split('.')[0]}.** Card schema "
             f"{card['schema']}; written {written['timestamp']} by `{written['command']}` (meit "
             f"{written['code'].get('meit')}, commit {written['code'].get('git_commit') or 'unknown'}). The same facts "
             "are in `model_card.json`; this file is rendered from it (`meit card FOLDER`).",
             _use_section(card["intended_use"]), _model_section(model),
             _training_section(card.get("training"), card.get("training_note", "")), _evaluations_section(card)]
    derived = card.get("derived_from")
    if derived:
        parts.append("## Derived from\n\n" + _kv_table([(k, v) for k, v in derived.items()
                                                         if k != "evaluations_note"]))
    return "\n\n".join(parts) + "\n"
