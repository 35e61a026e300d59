"""Train, then score on the test split, then write ``OUTPUT_DIR/metrics.json`` and ``results.md``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meit.classify.config import ClassifyRecipe
from meit.classify.engine import ClassifyTrainResult, train_classifier
from meit.classify.model import EcgClassifier
from meit.classify.scoring import evaluate_classifier, results_markdown
from meit.publish import atomic_write_text


@dataclass
class ClassifyRun:
    training: ClassifyTrainResult
    metrics: dict[str, Any]


def write_scores(metrics: dict[str, Any], folder: str | Path) -> None:
    """``metrics.json`` and ``results.md`` in ``folder``, each written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    atomic_write_text(folder / "results.md", results_markdown(metrics))


def classify(recipe: ClassifyRecipe, *, progress: bool = True) -> ClassifyRun:
    """The whole job of ``meit classify train``."""
    training = train_classifier(recipe, progress=progress)
    if not training.main_process:
        return ClassifyRun(training, {})
    model = EcgClassifier.from_pretrained(training.final_dir)
    metrics = evaluate_classifier(
        model, recipe.data.require_path(), recipe.data.test_split, batch_size=recipe.eval.batch_size,
        max_samples=recipe.eval.max_samples, resamples=recipe.eval.bootstrap, confidence=recipe.eval.confidence,
        seed=recipe.seed, degrade=recipe.eval.degrade or None, image_cache=recipe.data.image_cache,
        progress=progress)
    metrics["training"] = [{"stage": i + 1, "data": stage.data, "output": str(stage.final_dir), "steps": stage.steps,
                            "records": stage.records, "labels": list(stage.labels), "positives": stage.positives,
                            "skipped": stage.skipped, "seconds": round(stage.seconds, 1),
                            "seconds_per_step": round(stage.seconds / max(len(stage.losses), 1), 3),
                            "final_loss": stage.losses[-1] if stage.losses else None,
                            "head_kept_from_stage1": stage.head_kept}
                           for i, stage in enumerate(training.stages)]
    write_scores(metrics, recipe.output_dir)
    return ClassifyRun(training, metrics)
