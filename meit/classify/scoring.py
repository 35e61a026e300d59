"""Scoring a classifier on a split: per-class AUROC with bootstrap intervals, beside its shuffled-ECG control.

The control pairs every record's labels with the prediction for *another* record's ECG (a fixed derangement,
as in :mod:`meit.evaluation.controls`). A classifier reads nothing but the ECG, so that is exactly the model run
on the shuffled ECGs, and its AUROC says what the scores are worth without the signal (0.5 by construction for
a model that reads it; the label-prior floor). ``degrade`` also scores pages made to look scanned or
photographed (paper images only): the augmentations of :mod:`meit.render`, seeded per record.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from meit.classify.data import LabelledEcgDataset, collate
from meit.classify.engine import labelled_split
from meit.classify.model import EcgClassifier, ReportModelFindings
from meit.data.dataset import contract_transform, dataset_fs
from meit.evaluation.controls import derangement
from meit.evaluation.ranking import bootstrap_auroc

#: ``metrics["scored"]`` of a report model's encoder and findings head (else ``"classifier"``)
REPORT_MODEL_SCORED = "report-model encoder + findings head"


@torch.no_grad()
def predict(model: EcgClassifier | ReportModelFindings, dataset: LabelledEcgDataset, batch_size: int, *,
            progress: bool = True, desc: str = "classify") -> np.ndarray:
    """Sigmoid probabilities ``[N, C]`` for every labelled record of ``dataset``, in order."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    out = [torch.sigmoid(model(batch["ecg"]).float()).numpy()
           for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress)]
    return np.concatenate(out, axis=0)


def score_predictions(probabilities: np.ndarray, targets: np.ndarray, labels: tuple[str, ...], *, resamples: int,
                      confidence: float, seed: int) -> dict[str, Any]:
    """AUROC per label and macro, with intervals; the same for the shuffled-ECG control."""
    real = bootstrap_auroc(probabilities, targets, resamples=resamples, confidence=confidence, seed=seed)
    partner = derangement(len(targets), seed) if len(targets) >= 2 else np.arange(len(targets))
    shuffled = bootstrap_auroc(probabilities[partner], targets, resamples=resamples, confidence=confidence, seed=seed)

    def table(result: dict[str, Any]) -> dict[str, Any]:
        return {name: {"auroc": _num(result["auroc"][j]), "low": _num(result["low"][j]),
                       "high": _num(result["high"][j]), "resamples_kept": result["kept"][j]}
                for j, name in enumerate(labels)}

    return {"records": len(targets),
            "positives": {name: int(targets[:, j].sum()) for j, name in enumerate(labels)},
            "macro_auroc": _num(real["macro"]), "macro_low": _num(real["macro_low"]),
            "macro_high": _num(real["macro_high"]), "per_label": table(real),
            "unscored": [name for j, name in enumerate(labels) if not real["scored"][j]],
            "shuffled_ecg": {"macro_auroc": _num(shuffled["macro"]), "macro_low": _num(shuffled["macro_low"]),
                             "macro_high": _num(shuffled["macro_high"]), "per_label": table(shuffled)},
            "bootstrap": {"resamples": resamples, "confidence": confidence, "seed": seed}}


def _num(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def evaluate_classifier(model: EcgClassifier | ReportModelFindings, path: str, split_name: str, *, batch_size: int = 64,
                        max_samples: int | None = None, resamples: int = 1000, confidence: float = 0.95,
                        seed: int = 0, degrade: dict[str, float] | None = None, image_cache: str | None = None,
                        progress: bool = True) -> dict[str, Any]:
    """Score ``model`` on split ``split_name`` of ``path`` (clean, and degraded when ``degrade`` is given)."""
    split, labels = labelled_split(path, split_name, model.label_source, model.labels, 1, max_samples)
    fs_in = dataset_fs(split, path)
    conditions = {"clean": contract_transform(model.contract, fs_in, image_cache=image_cache, split_name=split_name,
                                              data_path=path)}
    if degrade:
        scanned = dataclasses.replace(model.contract, image_augment=tuple(sorted(degrade.items())))
        conditions["degraded"] = scanned.load_transform(fs_in, augment=True)
    out: dict[str, Any] = {"data": str(path), "split": split_name, "labels": list(model.labels),
                           "scored": REPORT_MODEL_SCORED if isinstance(model, ReportModelFindings) else "classifier",
                           "label_source": model.label_source, "skipped": dict(labels.skipped),
                           "contract": model.contract.describe(), "image_mode": model.contract.image_mode}
    for name, transform in conditions.items():
        dataset = LabelledEcgDataset(split, labels, transform)
        probabilities = predict(model, dataset, batch_size, progress=progress, desc=f"classify ({name})")
        out[name] = score_predictions(probabilities, labels.targets, model.labels, resamples=resamples,
                                      confidence=confidence, seed=seed)
    if degrade:
        out["degraded"]["augmentations"] = dict(degrade)
    return out


def _cell(entry: dict[str, Any]) -> str:
    if entry.get("auroc") is None:
        return "n/a"
    if entry.get("low") is None:
        return f"{entry['auroc']:.3f}"
    return f"{entry['auroc']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def results_markdown(metrics: dict[str, Any]) -> str:
    """Per-label AUROC with intervals and positives, then the macro row, for each condition, beside the control."""
    lines = [f"# Classification: {metrics['split']} split of {metrics['data']}", "",
             f"Encoder input: {metrics['contract']}. Labels: {metrics['label_source']}."]
    if metrics.get("scored") == REPORT_MODEL_SCORED:
        lines.append("Scored: a report model's encoder and findings head alone, without its language model: what "
                     "the encoder reads in each ECG.")
    if metrics.get("skipped"):
        lines.append(f"Records not labelled: {metrics['skipped']}.")
    for condition in ("clean", "degraded"):
        scores = metrics.get(condition)
        if scores is None:
            continue
        confidence = scores["bootstrap"]["confidence"]
        clean = "clean pages" if str(metrics.get("image_mode", "")).startswith("paper-") else "the ECGs as recorded"
        title = clean if condition == "clean" else f"degraded pages ({scores.get('augmentations')})"
        lines += ["", f"## {title}: {scores['records']} records, AUROC [{confidence:.0%} bootstrap interval]", "",
                  "| label | positives | AUROC | shuffled-ECG control |", "|---|---|---|---|"]
        for label in metrics["labels"]:
            if label in scores["unscored"]:
                continue  # listed after the table
            lines.append(f"| {label} | {scores['positives'][label]} | {_cell(scores['per_label'][label])} | "
                         f"{_cell(scores['shuffled_ecg']['per_label'][label])} |")
        macro = {"auroc": scores["macro_auroc"], "low": scores["macro_low"], "high": scores["macro_high"]}
        control = scores["shuffled_ecg"]
        control_macro = {"auroc": control["macro_auroc"], "low": control["macro_low"], "high": control["macro_high"]}
        lines.append(f"| **macro** | | **{_cell(macro)}** | {_cell(control_macro)} |")
        if scores["unscored"]:
            lines.append(f"\nNot scored (one class only in this split): {', '.join(scores['unscored'])}.")
    return "\n".join(lines) + "\n"
