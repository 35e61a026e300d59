"""``meit pretrain`` end to end: contrastive pretraining, then the self-evaluation of what it saved.

The loop (``meit.pretrain``) does not score; this module, above it, hands the loop a recall@k scorer for its
periodic validation and evaluates the saved artifact exactly as a user would load it: retrieval recall@k in
both directions and zero-shot AUROC on ``eval.split``, written to ``OUTPUT_DIR/metrics.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from meit.evaluation.model_card import record_pretrain_evaluation
from meit.evaluation.ranking import recall_at_k
from meit.pretrain.config import PretrainRecipe
from meit.pretrain.data import prepared_split
from meit.pretrain.engine import EmbeddingScorer, PretrainResult, pretrain
from meit.pretrain.model import EcgTextModel
from meit.publish import atomic_write_text
from meit.retrieval.evaluate import evaluate_alignment
from meit.retrieval.zeroshot import load_prompt_sets


def validation_recall(ks: Sequence[int]) -> EmbeddingScorer:
    """ECG→report recall@k over the validation batch, a hit being any row with the same report text."""

    def score(ecg: torch.Tensor, text: torch.Tensor, keys: torch.Tensor) -> dict[str, float]:
        recall = recall_at_k(ecg @ text.t(), keys[:, None] == keys[None, :], ks)
        return {f"val_recall@{k}": value for k, value in recall.items()}

    return score


def self_evaluate(recipe: PretrainRecipe, final_dir: Path, *, progress: bool = False) -> dict[str, Any]:
    """Load the saved artifact and score it on ``eval.split``: recall@k (both directions) and zero-shot AUROC."""
    model = EcgTextModel.from_pretrained(final_dir)
    dataset = prepared_split(model.contract, recipe.data.require_path(), recipe.eval.split, recipe.eval.max_samples)
    metrics = evaluate_alignment(
        model, dataset, ks=recipe.eval.ks, prompt_sets=load_prompt_sets(recipe.eval.prompts),
        min_positives=recipe.eval.min_positives, batch_size=recipe.eval.batch_size, progress=progress,
    )
    return {"split": recipe.eval.split, "data": recipe.data.path, "artifact": str(final_dir), **metrics}


def pretrain_and_evaluate(recipe: PretrainRecipe, *, progress: bool = True, evaluate: bool = True) -> PretrainResult:
    """Pretrain (validating with recall@k), then on the main process write ``metrics.json`` when ``evaluate``."""
    result = pretrain(recipe, progress=progress, validation_scorer=validation_recall(recipe.eval.ks),
                      needs_eval_split=evaluate)
    if evaluate and result.main_process:
        result.metrics = self_evaluate(recipe, result.final_dir, progress=progress)
        metrics_file = Path(recipe.output_dir) / "metrics.json"
        atomic_write_text(metrics_file, json.dumps(result.metrics, indent=2))
        record_pretrain_evaluation(result.final_dir, result.metrics, recipe, metrics_file)  # logged, never fatal
    return result
