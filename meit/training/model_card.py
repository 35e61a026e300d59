"""The model card a training or pretraining run writes into its ``final/`` folder (see ``meit.models.card``).

Called on the main process after the artifact is saved; a failure is logged and counted, never raised
(:func:`meit.models.card.guarded`), so a finished run stays finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meit.models.card import guarded, write_card
from meit.models.card_facts import data_facts, ecg_text_model_facts, hardware_facts, meit_model_facts, new_card


@dataclass(frozen=True)
class RunFacts:
    """What the loop knows about a finished run."""

    identity: dict[str, Any]  # ``resume.run_identity``: what every checkpoint of the run records
    steps: int
    steps_this_session: int
    seconds: float
    processes: int
    batches_per_epoch: int  # per process
    final_loss: float | None
    mixed_precision: str | None = None  # what the accelerator ran ("no", "bf16", "fp16")


def _training(recipe: Any, run: RunFacts, *, eval_split: str | None, stage: str | None) -> dict[str, Any]:
    train = recipe.train
    return {
        "data": data_facts(recipe.data.path, train_split=recipe.data.train_split, eval_split=eval_split,
                           max_train_samples=recipe.data.max_train_samples),
        "recipe_sha256": run.identity["recipe_sha256"],
        "recipe": recipe.model_dump(mode="json"),
        "stage": stage,
        "steps": run.steps,
        "steps_this_session": run.steps_this_session,
        "epochs": run.steps * train.grad_accum / run.batches_per_epoch if run.batches_per_epoch else None,
        "samples_seen": run.steps * train.batch_size * train.grad_accum * run.processes,
        "final_loss": run.final_loss,
        "wall_seconds": round(run.seconds, 1),
        "seed": recipe.seed,
        "processes": run.processes,
        "mixed_precision": run.mixed_precision,
        "hardware": hardware_facts(run.processes),
    }


def write_training_card(final_dir: Path, model: Any, recipe: Any, run: RunFacts) -> str | None:
    """``meit train``'s card for ``final_dir``; returns the error message when it could not be written."""
    def write() -> None:
        eval_split = recipe.data.eval_split if recipe.train.eval_every else None
        training = _training(recipe, run, eval_split=eval_split, stage=recipe.train.stage)
        write_card(final_dir, new_card(final_dir.parent.name, meit_model_facts(model), training))

    return guarded("train", final_dir, write)


def write_pretrain_card(final_dir: Path, model: Any, recipe: Any, run: RunFacts) -> str | None:
    """``meit pretrain``'s card for ``final_dir`` (an ECG–text model); the error message when not written."""
    def write() -> None:
        eval_split = recipe.eval.split if recipe.train.eval_every else None
        training = _training(recipe, run, eval_split=eval_split, stage="contrastive pretraining")
        write_card(final_dir, new_card(final_dir.parent.name, ecg_text_model_facts(model, recipe.text.model),
                                       training))

    return guarded("pretrain", final_dir, write)
