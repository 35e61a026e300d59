"""``meit pretrain``: contrastive ECG–report pretraining on the shared training loop.

The run writes ``OUTPUT_DIR/final/`` (an encoder artifact ``meit train`` accepts through
``model.encoder_checkpoint``, plus the heads and text encoder for retrieval and zero-shot use) and
``OUTPUT_DIR/recipe.yaml``. Scoring the result (recall@k, zero-shot AUROC) is evaluation's job: the loop
takes an optional ``validation_scorer`` for its periodic validation, and ``meit.retrieval.pretraining``
runs pretraining followed by the self-evaluation that ``meit pretrain`` reports.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from meit.config import dump_recipe
from meit.data.dataset import get_split, load_prepared
from meit.errors import DataError
from meit.pretrain.config import PretrainRecipe
from meit.pretrain.data import EcgTextCollator, EcgTextDataset, prepared_split
from meit.pretrain.losses import gather_rows, info_nce, masked_mse, span_mask
from meit.pretrain.model import EcgTextModel
from meit.publish import atomic_write_text
from meit.training.loop import LoopSettings, explain_oom, flat_config, run_loop, save_final
from meit.training.model_card import RunFacts, write_pretrain_card
from meit.training.optim import build_scheduler, total_optimizer_steps
from meit.training.resume import run_identity, run_settings
from meit.training.setup import build_accelerator

log = logging.getLogger(__name__)

#: scores validation embeddings: ``(ecg [N, D], text [N, D], report keys [N])`` → ``{"val_<name>": value}``
EmbeddingScorer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, float]]


@dataclass
class PretrainResult:
    final_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    main_process: bool = True
    card_error: str | None = None  # why final/model_card.json could not be written (the run itself succeeded)


def split_dataset(recipe: PretrainRecipe, model: EcgTextModel, split_name: str,
                  max_samples: int | None = None, *, augment: bool = False) -> EcgTextDataset:
    """A split of ``data.path`` transformed to the encoder's contract (``augment``: an image encoder's training
    augmentations; ``data.image_cache``: pre-rendered images)."""
    return prepared_split(model.contract, recipe.data.require_path(), split_name, max_samples, augment=augment,
                          image_cache=recipe.data.image_cache)


class _ContrastiveTask:
    """InfoNCE over the global batch (+ masked reconstruction); validation loss and the scorer's figures."""

    def __init__(self, recipe: PretrainRecipe, accelerator: Any, eval_loader: DataLoader | None,
                 scorer: EmbeddingScorer | None) -> None:
        self.recipe = recipe
        self.objective = recipe.objective
        self.accelerator = accelerator
        self.eval_loader = eval_loader
        self.scorer = scorer

    def _losses(self, model: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        obj = self.objective
        ecg = batch["ecg"]
        mask = None
        if obj.mask_ratio > 0 and model.training:
            c = self.accelerator.unwrap_model(model).contract
            mask = span_mask(ecg.shape[0], c.leads, c.samples, obj.mask_ratio,
                             round(obj.mask_span_seconds * c.fs), device=ecg.device)
            ecg = ecg.masked_fill(mask, 0.0)
        out = model(ecg, batch["input_ids"], batch["attention_mask"])
        ecg_emb, text_emb, keys = out.ecg, out.text, batch["report_key"]
        if obj.gather:
            ecg_emb, text_emb = gather_rows(ecg_emb), gather_rows(text_emb)
            keys = gather_rows(keys, with_grad=False)
        losses = {"contrastive": info_nce(ecg_emb, text_emb, out.logit_scale,
                                          keys if obj.same_report_positive else None)}
        if mask is not None and out.reconstruction is not None and obj.reconstruction_weight > 0:
            losses["reconstruction"] = masked_mse(out.reconstruction, batch["ecg"], mask)
        return losses

    def loss(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        losses = self._losses(model, batch)
        total = losses["contrastive"]
        if "reconstruction" in losses:
            total = total + self.objective.reconstruction_weight * losses["reconstruction"]
        return total

    @torch.no_grad()
    def evaluate(self, model: Any, step: int) -> dict[str, Any]:
        if self.eval_loader is None:
            return {}
        model.eval()
        ecgs, texts, keys = [], [], []
        for batch in self.eval_loader:
            out = model(batch["ecg"], batch["input_ids"], batch["attention_mask"])
            e, t, k = self.accelerator.gather_for_metrics((out.ecg, out.text, batch["report_key"]))
            ecgs.append(e.float())
            texts.append(t.float())
            keys.append(k)
        ecg, text, key = torch.cat(ecgs), torch.cat(texts), torch.cat(keys)
        scale = self.accelerator.unwrap_model(model).logit_scale.exp().clamp(max=100.0).float()
        scores = self.scorer(ecg, text, key) if self.scorer is not None else {}
        return {"val_loss": float(info_nce(ecg, text, scale, key)), **scores}

    def failure_context(self, batch: dict[str, Any], step: int) -> contextlib.AbstractContextManager[None]:
        return explain_oom(
            "Lower train.batch_size (InfoNCE gets its negatives from every process, so more processes keep the "
            "batch large), freeze text layers (text.freeze_layers), or shorten text.max_length.",
            f"a batch of {tuple(batch['ecg'].shape)} ECG samples", step)


def _parameter_groups(model: EcgTextModel, recipe: PretrainRecipe) -> list[dict[str, Any]]:
    text = [p for p in model.text_model.parameters() if p.requires_grad]
    text_ids = {id(p) for p in model.text_model.parameters()}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in text_ids]
    cfg = recipe.train
    groups = [{"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "name": "ecg"}]
    if text:
        groups.append({"params": text, "lr": cfg.lr_text, "weight_decay": cfg.weight_decay, "name": "text"})
    return groups


def _loader(dataset: EcgTextDataset, recipe: PretrainRecipe, collator: EcgTextCollator, *, shuffle: bool,
            drop_last: bool) -> DataLoader:
    return DataLoader(dataset, batch_size=recipe.train.batch_size, shuffle=shuffle, collate_fn=collator,
                      num_workers=recipe.data.num_workers, generator=torch.Generator().manual_seed(recipe.seed),
                      drop_last=drop_last)


def pretrain(recipe: PretrainRecipe, *, progress: bool = True, validation_scorer: EmbeddingScorer | None = None,
             needs_eval_split: bool = False) -> PretrainResult:
    """Pretrain as the recipe says and write ``final/``; ``needs_eval_split`` checks ``eval.split`` up front
    for a caller that evaluates afterwards."""
    output_dir = Path(recipe.output_dir)
    prepared = load_prepared(recipe.data.require_path())
    needed = [recipe.data.train_split] + ([recipe.eval.split] if needs_eval_split or recipe.train.eval_every else [])
    for name in needed:
        get_split(prepared, name, recipe.data.path)
    accelerator = build_accelerator(recipe)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / "recipe.yaml", dump_recipe(recipe))

    torch.manual_seed(recipe.seed)
    model = EcgTextModel.build(recipe)
    train_set = split_dataset(recipe, model, recipe.data.train_split, recipe.data.max_train_samples, augment=True)
    per_step = recipe.train.batch_size * accelerator.num_processes
    if len(train_set) < per_step:
        raise DataError(f"split '{recipe.data.train_split}' has {len(train_set)} rows, fewer than one global "
                        f"batch ({recipe.train.batch_size} × {accelerator.num_processes} processes)")
    collator = EcgTextCollator(model.tokenizer, recipe.text.max_length)
    train_loader = _loader(train_set, recipe, collator, shuffle=True, drop_last=True)
    eval_loader = None
    if recipe.train.eval_every:
        eval_set = split_dataset(recipe, model, recipe.eval.split, recipe.eval.max_samples)
        eval_loader = _loader(eval_set, recipe, collator, shuffle=False, drop_last=False)

    optimizer = torch.optim.AdamW(_parameter_groups(model, recipe), lr=recipe.train.lr)
    batches_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes)
    total_steps = total_optimizer_steps(recipe.train, batches_per_epoch)  # type: ignore[arg-type]
    scheduler = build_scheduler(optimizer, recipe.train, total_steps)  # type: ignore[arg-type]
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)
    if recipe.train.trackers:
        accelerator.init_trackers("meit-pretrain", config=flat_config(recipe))

    settings = LoopSettings.from_recipe(recipe, output_dir, total_steps, accelerator.num_processes, desc="pretrain",
                                        eval_every=recipe.train.eval_every, run_settings=run_settings(recipe))
    task = _ContrastiveTask(recipe, accelerator, eval_loader, validation_scorer)
    looped = run_loop(accelerator, model, optimizer, scheduler, train_loader, settings, task, progress=progress)

    final_dir = output_dir / "final"
    save_final(model, accelerator, final_dir)
    result = PretrainResult(final_dir=final_dir, steps=looped.steps, losses=looped.losses,
                            evaluations=looped.evaluations, seconds=looped.seconds)
    if accelerator.is_main_process:
        atomic_write_text(final_dir / "recipe.yaml", dump_recipe(recipe))
        result.card_error = write_pretrain_card(final_dir, accelerator.unwrap_model(model), recipe, RunFacts(
            identity=run_identity(settings.run_settings, accelerator.num_processes), steps=looped.steps,
            steps_this_session=len(looped.losses), seconds=looped.seconds, processes=accelerator.num_processes,
            batches_per_epoch=batches_per_epoch, final_loss=looped.losses[-1] if looped.losses else None,
            mixed_precision=str(accelerator.mixed_precision)))
    result.main_process = accelerator.is_main_process
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result
