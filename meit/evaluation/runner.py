"""``meit eval``: generate for a split, score the continuations, write metrics with provenance."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from meit.config import EvalConfig, Recipe
from meit.data.dataset import evaluation_instruction
from meit.evaluation.generation import DecodingSettings, generate_reports
from meit.evaluation.io import write_predictions
from meit.evaluation.provenance import provenance
from meit.training.setup import build_split_dataset

log = logging.getLogger(__name__)


def decoding_from(cfg: EvalConfig, seed: int) -> DecodingSettings:
    return DecodingSettings(max_new_tokens=cfg.max_new_tokens, num_beams=cfg.num_beams, do_sample=cfg.do_sample,
                            temperature=cfg.temperature, top_p=cfg.top_p, seed=seed)


def score_rows(rows: list[dict[str, str]], cfg: EvalConfig) -> dict[str, Any]:
    """Corpus-level text metrics plus clinical finding accuracy (micro/macro P/R/F1)."""
    from meit.evaluation.scoring import score_reports

    return score_reports({row["id"]: row["prediction"] for row in rows},
                         {row["id"]: row["reference"] for row in rows}, meteor=cfg.meteor, bertscore=cfg.bertscore)


def evaluate_model(
    model: Any,
    recipe: Recipe,
    out_dir: str | Path,
    *,
    data_path: str | None = None,
    split: str | None = None,
    checkpoint: str | None = None,
    progress: bool = True,
    label: str = "eval",
    perturb: Any = None,
) -> dict[str, Any]:
    """Generate on ``split`` of the prepared dataset, write ``predictions.jsonl`` and ``metrics.json``."""
    cfg = recipe.eval
    split_name = split or cfg.split
    path = data_path or recipe.data.path
    dataset = build_split_dataset(recipe, model, split_name, cfg.max_samples, with_report=False,
                                  fixed_instruction=evaluation_instruction(), data_path=path, perturb=perturb)
    settings = decoding_from(cfg, recipe.seed)
    rows = generate_reports(model, dataset, settings, batch_size=cfg.batch_size, progress=progress,
                            desc=f"{label}: generate")
    metrics = score_rows(rows, cfg)
    out = Path(out_dir)
    write_predictions(out / "predictions.jsonl", rows)
    result = {
        **metrics,
        "provenance": provenance(checkpoint, str(path), split_name, settings.as_dict(),
                                 {"instruction": evaluation_instruction(), "n": len(rows),
                                  "perturbation": perturb.label if perturb is not None else None}),
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def load_and_evaluate(checkpoint: str, data_path: str, split: str, out_dir: str, recipe: Recipe,
                      progress: bool = True, perturbations: list[Any] | None = None) -> dict[str, Any]:
    """Reload an artifact and evaluate it (clean, then under each perturbation if any)."""
    from meit.models import MeitModel

    model = MeitModel.from_pretrained(checkpoint)
    model_cfg = getattr(model, "cfg", None)
    if model_cfg is not None and hasattr(model_cfg, "max_length"):
        recipe = recipe.model_copy(update={"model": model_cfg})
    metrics = evaluate_model(model, recipe, out_dir, data_path=data_path, split=split, checkpoint=checkpoint,
                             progress=progress)
    if perturbations:
        evaluate_robustness(model, recipe, out_dir, perturbations, data_path=data_path, split=split,
                            checkpoint=checkpoint, clean=metrics, progress=progress)
    return metrics


def evaluate_robustness(model: Any, recipe: Recipe, out_dir: str | Path, specs: list[Any], *,
                        data_path: str | None = None, split: str | None = None, checkpoint: str | None = None,
                        clean: dict[str, Any] | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Evaluate under each perturbation level; write ``robustness.csv``, ``robustness.md`` and a plot."""
    from meit.evaluation.robustness import write_robustness

    out = Path(out_dir)
    rows = []
    if clean is not None:
        rows.append({"perturbation": "clean", "level": 0.0, **scalar_metrics(clean)})
    for spec in specs:
        metrics = evaluate_model(model, recipe, out / "robustness" / spec.label, data_path=data_path, split=split,
                                 checkpoint=checkpoint, progress=progress, label=spec.label, perturb=spec)
        rows.append({"perturbation": spec.name, "level": spec.level, **scalar_metrics(metrics)})
    write_robustness(rows, out)
    return rows


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics (drops provenance and the per-finding clinical table)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
