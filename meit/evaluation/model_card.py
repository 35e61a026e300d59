"""An evaluation's entry in the evaluated artifact's model card (``meit.models.card``).

``meit eval`` of a ``final/`` folder (and the quickstart's and the bench's evaluations, which go through the
same runner) adds its figures, controls, protocol and decoding under ``evaluations["<dataset>@<manifest
hash>/<split>"]``: evaluating another split or dataset adds an entry, evaluating the same one again replaces
it. Pretraining's self-evaluation (recall@k beside chance, zero-shot AUROC) is recorded the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meit.code_version import code_version
from meit.evaluation.provenance import file_sha256
from meit.models.card import add_evaluation, guarded, update_card
from meit.models.card_facts import command_line, meit_model_facts, new_card, now_utc
from meit.models.model_artifact import META_FILE

METRICS_DOCS = "docs/metrics.md, docs/evaluation.md"
_CONTROL_WORDS = {"shuffled": "each record reads another record's ECG (a derangement seeded by {seed})",
                  "zeros": "each record reads a flat all-zero ECG"}


def evaluation_key(data_path: str | Path, split: str, manifest_sha256: str | None) -> str:
    """``<dataset folder>@<first 12 of its manifest hash>/<split>``: one entry per dataset and split."""
    name = Path(data_path).name or str(data_path)
    return f"{name}@{manifest_sha256[:12]}/{split}" if manifest_sha256 else f"{name}/{split}"


def _protocol(result: dict[str, Any], cfg: Any, seed: int) -> dict[str, Any]:
    prov = result.get("provenance", {})
    names = [n for n in prov.get("controls", []) if n in _CONTROL_WORDS]
    text = ("BLEU-1…4 corpus-level, ROUGE-L and CIDEr-D (pycocoevalcap, MEIT's tokenisation), "
            + ("METEOR (NLTK meteor_score) and " if cfg.meteor else "no METEOR, ")
            + "ROUGE-1/2 as means over pairs" + (", BERTScore F1 (packaged MiniLM)" if cfg.bertscore else ""))
    protocol = {
        "scored text": "the generated continuation only (the prompt never enters a scored text)",
        "instruction": prov.get("instruction"),
        "records": f"the first {cfg.max_samples} rows of the split" if cfg.max_samples and (
            prov.get("n") or 0) >= cfg.max_samples else "the whole split",
        "text metrics": text,
        "clinical": "findings read from prediction and reference by meit's rule-based extractor; micro/macro F1",
        "controls": "; ".join(f"{n}: {_CONTROL_WORDS[n].format(seed=seed)}" for n in names) or "none run",
        "definitions": METRICS_DOCS,
    }
    if "verification" in result:
        protocol["verification"] = "each statement checked against the record's own signal (meit verify)"
    return protocol


def report_entry(result: dict[str, Any], cfg: Any, seed: int, out_dir: str | Path) -> dict[str, Any]:
    """The card entry of one ``evaluate_model`` result (``metrics.json`` content, controls included)."""
    prov = result.get("provenance", {})
    scalars = {k: v for k, v in result.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {
        "kind": "reports",
        "dataset": {"path": prov.get("data"), "name": Path(str(prov.get("data"))).name, "split": prov.get("split"),
                    "n": prov.get("n"), "manifest_sha256": prov.get("data_manifest_sha256")},
        "run": {"timestamp": now_utc(), "command": command_line(), "out": str(out_dir),
                "code": prov.get("code") or code_version()},
        "decoding": prov.get("decoding"),
        "protocol": _protocol(result, cfg, seed),
        "metrics": scalars,
        "controls": result.get("controls", {}),
        "grounding": result.get("grounding", {}),
        "details": {"metrics_file": str(Path(out_dir) / "metrics.json")},
    }


def record_evaluation(checkpoint: str | Path | None, model: Any, result: dict[str, Any], recipe: Any,
                      out_dir: str | Path) -> str | None:
    """Add ``result`` to ``checkpoint``'s card (created from the model when the artifact has none).

    Does nothing for a model that is not a saved meit artifact; returns the error message when the card
    could not be updated (logged and counted, never raised).
    """
    if checkpoint is None or not (Path(checkpoint) / META_FILE).is_file():
        return None
    folder = Path(checkpoint)

    def write() -> None:
        entry = report_entry(result, recipe.eval, recipe.seed, out_dir)
        key = evaluation_key(entry["dataset"]["path"], entry["dataset"]["split"], entry["dataset"]["manifest_sha256"])
        update_card(folder, lambda card: add_evaluation(card, key, entry), create=lambda: new_card(
            folder.resolve().parent.name, meit_model_facts(model, trained=False), None,
            training_note="Not recorded: this artifact was written without a model card (an older meit); the "
            "evaluations below are of its weights."))

    return guarded("eval", folder, write)


def _retrieval_figures(metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Pretraining's figures flattened, their chance levels (the control) and the margins over chance."""
    figures: dict[str, Any] = {"n": metrics.get("n")}
    chance: dict[str, Any] = {}
    for direction in ("ecg_to_report", "ecg_to_ecg"):
        for key, value in (metrics.get(direction) or {}).items():
            if key.startswith("recall@"):
                name = f"{direction}_{key}"
                figures[name] = value
                chance[name] = metrics[direction].get(key.replace("recall", "chance"))
    if "zero_shot_macro_auroc" in metrics:
        figures["zero_shot_macro_auroc"] = metrics["zero_shot_macro_auroc"]
        chance["zero_shot_macro_auroc"] = 0.5
    margins = {f"{k}_drop": (figures[k] - v if isinstance(figures[k], float) and isinstance(v, float) else None)
               for k, v in chance.items()}
    return figures, chance, margins


def record_pretrain_evaluation(final_dir: str | Path, metrics: dict[str, Any], recipe: Any,
                               metrics_file: str | Path) -> str | None:
    """Add pretraining's self-evaluation (recall@k beside chance, zero-shot AUROC) to its artifact's card."""
    folder = Path(final_dir)

    def write() -> None:
        figures, chance, margins = _retrieval_figures(metrics)
        data = Path(str(recipe.data.path))
        manifest = file_sha256(data / "manifest.json")
        entry = {
            "kind": "retrieval",
            "dataset": {"path": str(data), "name": data.name, "split": recipe.eval.split, "n": metrics.get("n"),
                        "manifest_sha256": manifest},
            "run": {"timestamp": now_utc(), "command": command_line(), "out": str(metrics_file),
                    "code": code_version()},
            "protocol": {
                "ecg_to_report": "each ECG ranks the split's distinct reports; a hit is its own wording in the top k",
                "ecg_to_ecg": "each ECG ranks the other ECGs; a hit states exactly the same non-empty finding set",
                "zero_shot": "AUROC per finding from text prompts, macro mean over scored findings",
                "controls": "chance: the recall a random ranking scores (AUROC 0.5)",
                "definitions": "docs/pretraining.md"},
            "metrics": figures,
            "controls": {"chance": chance},
            "grounding": {"chance": margins},
            "details": {"zero_shot": metrics.get("zero_shot", {})},
        }
        key = evaluation_key(data, recipe.eval.split, manifest)
        update_card(folder, lambda card: add_evaluation(card, key, entry))

    return guarded("eval", folder, write)
