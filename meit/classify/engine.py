"""``meit classify train``: multi-label ECG classification on the shared training loop, in one or two stages.

Wang et al.'s schedule: an optional first stage on another dataset (``stage1.path``, e.g. rendered synthetic
records) trains encoder and head; the second stage fine-tunes them on ``data.path`` (the head is replaced when
the two stages' labels differ). Each stage is a full run of :func:`meit.training.loop.run_loop` — accelerate,
checkpoints, exact resume, progress with ETA — writing ``OUTPUT_DIR/stage1/`` and ``OUTPUT_DIR/`` respectively.
Scoring (``meit.classify.scoring``) follows on ``data.test_split``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from meit.classify.config import ClassifyRecipe
from meit.classify.data import LabelledEcgDataset, collate
from meit.classify.labels import SplitLabels, choose_label_names, record_label_sets, split_labels
from meit.classify.model import EcgClassifier
from meit.config import dump_recipe
from meit.data.dataset import contract_transform, dataset_fs, load_split
from meit.errors import DataError
from meit.publish import atomic_write_text
from meit.training.loop import LoopSettings, explain_oom, flat_config, run_loop, save_final
from meit.training.optim import build_scheduler, total_optimizer_steps
from meit.training.resume import run_settings
from meit.training.setup import build_accelerator

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    final_dir: Path
    data: str
    steps: int
    labels: tuple[str, ...]
    positives: dict[str, int]
    skipped: dict[str, int]
    records: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    head_kept: bool | None = None  # second stage of two: whether the first stage's head carried over
    main_process: bool = True  # this process is the main one (scores and prints; the others only train)


@dataclass
class ClassifyTrainResult:
    final_dir: Path
    stages: list[StageResult]
    main_process: bool = True


class _BceTask:
    """Binary cross-entropy over every label; no periodic evaluation (scoring follows the run)."""

    def loss(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        logits = model(batch["ecg"])
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), batch["targets"].float())

    def evaluate(self, model: Any, step: int) -> dict[str, Any]:
        return {}

    def failure_context(self, batch: dict[str, Any], step: int) -> contextlib.AbstractContextManager[None]:
        return explain_oom("Lower train.batch_size (raise train.grad_accum to keep the effective batch), or the "
                           "image size (ecg.image_size).", f"a batch of {tuple(batch['ecg'].shape)} inputs", step)


def labelled_split(path: str, split_name: str, source: str, names: tuple[str, ...] | None, min_positives: int,
                   max_samples: int | None = None) -> tuple[Any, SplitLabels]:
    """Split ``split_name`` of ``path`` and its labels (``names`` None: chosen from this split)."""
    split = load_split(path, split_name, max_samples)
    where = f"{path} split '{split_name}'"
    if names is None:
        names = choose_label_names(record_label_sets(split, source, where), source, min_positives)
    labels = split_labels(split, source, names, where)
    if labels.skipped:
        log.warning("%s: %d record(s) not labelled: %s", where, sum(labels.skipped.values()), dict(labels.skipped))
    return split, labels


def _run_stage(recipe: ClassifyRecipe, model: EcgClassifier, path: str, split: Any, labels: SplitLabels,
               output_dir: Path, max_steps: int | None, lr: float, desc: str, progress: bool) -> StageResult:
    """Train ``model`` on the labelled training records ``split`` / ``labels`` of ``path`` into ``output_dir``."""
    transform = contract_transform(model.contract, dataset_fs(split, path), augment=True,
                                   image_cache=recipe.data.image_cache if path == recipe.data.path else None,
                                   split_name=recipe.data.train_split, data_path=path)
    dataset = LabelledEcgDataset(split, labels, transform)
    stage_recipe = recipe.model_copy(update={"output_dir": str(output_dir),
                                             "train": recipe.train.model_copy(update={"max_steps": max_steps,
                                                                                      "lr": lr})})
    accelerator = build_accelerator(stage_recipe)
    per_step = recipe.train.batch_size * accelerator.num_processes
    if len(dataset) < per_step:
        raise DataError(f"{path} split '{recipe.data.train_split}' has {len(dataset)} labelled records, fewer than "
                        f"one global batch ({recipe.train.batch_size} × {accelerator.num_processes} processes)")
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / "recipe.yaml", dump_recipe(recipe))
    loader = DataLoader(dataset, batch_size=recipe.train.batch_size, shuffle=True, collate_fn=collate,
                        num_workers=recipe.data.num_workers, generator=torch.Generator().manual_seed(recipe.seed),
                        drop_last=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=recipe.train.weight_decay)
    batches_per_epoch = math.ceil(len(loader) / accelerator.num_processes)
    total_steps = total_optimizer_steps(stage_recipe.train, batches_per_epoch)  # type: ignore[arg-type]
    scheduler = build_scheduler(optimizer, stage_recipe.train, total_steps)  # type: ignore[arg-type]
    prepared, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if recipe.train.trackers:
        accelerator.init_trackers("meit-classify", config=flat_config(stage_recipe))
    settings = LoopSettings.from_recipe(stage_recipe, output_dir, total_steps, accelerator.num_processes, desc=desc,
                                        run_settings={**run_settings(stage_recipe), "stage": desc})
    looped = run_loop(accelerator, prepared, optimizer, scheduler, loader, settings, _BceTask(), progress=progress)
    final_dir = output_dir / "final"
    save_final(prepared, accelerator, final_dir)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return StageResult(final_dir=final_dir, data=str(path), steps=looped.steps, labels=model.labels,
                       positives=labels.positives, skipped=dict(labels.skipped), records=len(dataset),
                       losses=looped.losses, seconds=looped.seconds, main_process=accelerator.is_main_process)


def train_classifier(recipe: ClassifyRecipe, *, progress: bool = True) -> ClassifyTrainResult:
    """Train as the recipe says (first stage, if any, then ``data.path``) and write ``OUTPUT_DIR/final``."""
    target = recipe.data.require_path()
    output_dir = Path(recipe.output_dir)
    torch.manual_seed(recipe.seed)
    contract = recipe.ecg.contract(recipe.data)
    target_split, target_labels = labelled_split(target, recipe.data.train_split, recipe.data.labels, None,
                                                 recipe.data.min_positives, recipe.data.max_train_samples)
    stages: list[StageResult] = []
    first = recipe.stage1
    if first.path:
        source = first.labels or recipe.data.labels
        first_split, first_labels = labelled_split(first.path, recipe.data.train_split, source, None,
                                                   recipe.data.min_positives, recipe.data.max_train_samples)
        model = EcgClassifier.build(recipe.ecg.encoder, contract, first_labels.names, source,
                                    dropout=recipe.train.head_dropout, checkpoint=recipe.ecg.checkpoint)
        stages.append(_run_stage(recipe, model, first.path, first_split, first_labels, output_dir / "stage1",
                                 first.max_steps, first.lr or recipe.train.lr, "stage 1", progress))
        head_kept = (model.labels, model.label_source) == (target_labels.names, recipe.data.labels)
        if not head_kept:
            torch.manual_seed(recipe.seed + 1)
            model.reset_head(target_labels.names, recipe.data.labels)
    else:
        model = EcgClassifier.build(recipe.ecg.encoder, contract, target_labels.names, recipe.data.labels,
                                    dropout=recipe.train.head_dropout, checkpoint=recipe.ecg.checkpoint)
        head_kept = None
    final = _run_stage(recipe, model, target, target_split, target_labels, output_dir, recipe.train.max_steps,
                       recipe.train.lr, "stage 2" if first.path else "train", progress)
    final.head_kept = head_kept
    stages.append(final)
    return ClassifyTrainResult(final_dir=final.final_dir, stages=stages, main_process=final.main_process)
