"""``meit train``: instruction tuning on the shared loop (1 process, DDP, DeepSpeed or FSDP2 through accelerate).

Determinism and exact resume follow what was measured on this stack (FACTS §5): a seedable sampler
with an explicit data seed, ``set_epoch`` every epoch, scheduler stepped only when gradients sync,
resume = restore state then skip the batches already seen in the current epoch (see ``loop.py``), and
only from a checkpoint of the same run (``resume.py``).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from meit.config import Recipe, dump_recipe
from meit.data.collator import EcgCollator, model_inputs
from meit.data.dataset import evaluation_instruction
from meit.data.sampling import LengthGroupedSampler, WeightedEpochSampler, finding_balance_weights
from meit.errors import ConfigError
from meit.findings import finding_matrix
from meit.inference.generation import DecodingSettings, generate_reports
from meit.publish import atomic_write_text
from meit.training.fsdp import configure_wrapping, uses_fsdp
from meit.training.loop import LoopSettings, explain_oom, flat_config, run_loop, save_final, shards_parameters
from meit.training.model_card import RunFacts, write_training_card
from meit.training.optim import build_optimizer, build_scheduler, total_optimizer_steps
from meit.training.resume import choose_checkpoint, decided_on_main, run_identity, run_settings
from meit.training.setup import build_accelerator, build_model, build_split_dataset, check_data
from meit.training.sharded_checkpoint import uses_sharded_state


@dataclass
class TrainResult:
    final_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    card_error: str | None = None  # why final/model_card.json could not be written (the run itself succeeded)


def _loader(dataset: Any, recipe: Recipe, collator: EcgCollator, shuffle: bool, batch_size: int) -> DataLoader:
    generator = torch.Generator().manual_seed(recipe.seed)
    sampler: Sampler[int] | None = None
    if shuffle and recipe.data.group_by_length:
        sampler = LengthGroupedSampler(dataset.token_lengths(), batch_size, seed=recipe.seed)
    elif shuffle and recipe.data.balance_findings > 0:
        sampler = WeightedEpochSampler(finding_balance_weights(dataset.reports(), recipe.data.balance_findings),
                                       seed=recipe.seed)
    if sampler is not None:
        shuffle = False
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        collate_fn=collator,
        num_workers=recipe.data.num_workers,
        generator=generator,
        drop_last=False,
    )


@torch.no_grad()
def validation_loss(model: torch.nn.Module, loader: DataLoader, accelerator: Any) -> float:
    """Token-weighted mean loss over the validation loader (gathered across processes)."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    for batch in loader:
        inputs = model_inputs(batch)
        out = model(**inputs, labelled_logits_only=True)
        tokens = (inputs["labels"][:, 1:] != -100).sum()
        total += torch.stack([out.loss.double() * tokens, tokens.double()])
    total = accelerator.reduce(total, reduction="sum")
    model.train()
    return float(total[0] / total[1].clamp(min=1))


def report_targets(batch: dict[str, Any], labels: list[str]) -> torch.Tensor:
    """Findings read from a batch's reference reports: the findings head's multi-hot targets."""
    return torch.from_numpy(finding_matrix(batch["reports"], labels))


@torch.no_grad()
def findings_accuracy(model: torch.nn.Module, loader: DataLoader, accelerator: Any) -> dict[str, float]:
    """Validation loss and micro/macro F1 of the findings head (threshold 0.5) against report-derived labels."""
    model.eval()
    inner = accelerator.unwrap_model(model)
    counts = torch.zeros(3, len(inner.finding_labels), dtype=torch.float64, device=accelerator.device)
    loss = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    for batch in loader:
        targets = report_targets(batch, inner.finding_labels).to(accelerator.device)
        out = model(ecg=batch["ecg"], finding_targets=targets)
        logits = out.finding_logits
        loss += torch.stack([out.findings_loss.double() * len(targets),
                             torch.tensor(float(len(targets)), dtype=torch.float64, device=accelerator.device)])
        pred = (logits > 0).double()
        counts += torch.stack([(pred * targets).sum(0), (pred * (1 - targets)).sum(0), ((1 - pred) * targets).sum(0)])
    counts = accelerator.reduce(counts, reduction="sum")
    loss = accelerator.reduce(loss, reduction="sum")
    model.train()
    tp, fp, fn = counts
    seen = (tp + fn) > 0
    f1 = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
    micro = float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()).clamp(min=1))
    return {"loss": float(loss[0] / loss[1].clamp(min=1)), "micro_f1": micro,
            "macro_f1": float(f1[seen].mean()) if bool(seen.any()) else 0.0}


class _InstructionTask:
    """Instruction tuning: causal-LM loss on the report, validation loss and sample reports."""

    def __init__(self, recipe: Recipe, accelerator: Any, eval_loader: DataLoader | None, sample_set: Any) -> None:
        self.recipe = recipe
        self.accelerator = accelerator
        self.eval_loader = eval_loader
        self.sample_set = sample_set
        self.val_losses: list[tuple[int, float]] = []

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        train = self.recipe.train
        if train.stage == "encoder":  # encoder + findings head only: the LLM never runs
            return model(ecg=batch["ecg"], finding_targets=self._targets(model, batch)).loss
        inputs = model_inputs(batch)
        if train.aux_findings_weight > 0:
            return model(**inputs, finding_targets=self._targets(model, batch),
                         findings_weight=train.aux_findings_weight, labelled_logits_only=True).loss
        return model(**inputs, labelled_logits_only=True).loss

    def _targets(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        return report_targets(batch, self.accelerator.unwrap_model(model).finding_labels)

    def evaluate(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        if self.eval_loader is None:
            return {}
        if self.recipe.train.stage == "encoder":
            return {"val_findings": findings_accuracy(model, self.eval_loader, self.accelerator)}
        figures: dict[str, Any] = {"val_loss": validation_loss(model, self.eval_loader, self.accelerator)}
        self.val_losses.append((step, figures["val_loss"]))
        if self.sample_set is not None and self.accelerator.is_main_process and not shards_parameters(self.accelerator):
            figures["samples"] = generate_reports(
                self.accelerator.unwrap_model(model), self.sample_set,
                DecodingSettings(max_new_tokens=self.recipe.eval.max_new_tokens, seed=self.recipe.seed),
                batch_size=min(len(self.sample_set), self.recipe.eval.batch_size), progress=False)
        return figures

    def failure_context(self, batch: dict[str, Any], step: int) -> contextlib.AbstractContextManager[None]:
        shape = tuple(batch["input_ids"].shape)
        return explain_oom(
            "Lower train.batch_size and raise train.grad_accum to keep the effective batch, set "
            "model.gradient_checkpointing=true, lower model.max_length, load the base in 4 bits "
            "(model.quantization=4bit), or launch with a DeepSpeed ZeRO-3 offload config "
            "(recipes/accelerate/deepspeed_zero3_offload.yaml).",
            f"a batch of {shape[0]} × {shape[1]} tokens (model.llm={self.recipe.model.llm})", step)


def encoder_stage_recipe(recipe: Recipe) -> Recipe:
    """The recipe of ``train.encoder_stage``: the same model and data, ``train.stage=encoder``, its own folder."""
    stage = recipe.train.encoder_stage
    assert stage is not None
    train_cfg = recipe.train.model_copy(update={
        "stage": "encoder", "encoder_stage": None, "max_steps": stage.max_steps, "batch_size": stage.batch_size,
        "grad_accum": 1, "lr": stage.lr, "lr_encoder": None, "warmup_ratio": stage.warmup_ratio,
        "eval_every": stage.eval_every, "save_every": None, "train_encoder": True, "aux_findings_weight": 0.0,
        "trackers": [],  # the job's trackers follow the main stage
        "resume": "auto" if recipe.train.resume == "auto" else None,  # a given path is the main stage's
        "sample_reports": 0,
    })
    return recipe.model_copy(update={"train": train_cfg, "output_dir": str(Path(recipe.output_dir) / "encoder_stage")})


def _run_encoder_stage(recipe: Recipe, accelerator: Any, progress: bool) -> Recipe:
    """Run ``train.encoder_stage`` (unless its artifact exists) and return the recipe that continues from it."""
    # the recipe validators refused encoder_stage with init_from, and without model.finding_head
    first = encoder_stage_recipe(recipe)
    final = Path(first.output_dir) / "final"
    if (final / "meit_model.json").is_file():
        recorded = final / "recipe.yaml"
        if not recorded.is_file() or recorded.read_text() != dump_recipe(first):
            raise ConfigError(
                f"{final} holds an encoder stage trained with another recipe (model, data or encoder_stage keys "
                f"differ from {recorded}); remove {first.output_dir} to train it again, or use another output_dir")
    else:
        if uses_sharded_state(accelerator) or uses_fsdp(accelerator):
            raise ConfigError(
                "train.encoder_stage runs two models through one accelerate job, which DeepSpeed and FSDP do not "
                f"allow: run it as its own job (train.stage=encoder output_dir={first.output_dir}, e.g. without "
                "DeepSpeed: it trains the encoder only), then this recipe with train.encoder_stage=null "
                f"train.init_from={final}")
        if progress:
            print(f"encoder stage: {first.train.max_steps} steps of batch {first.train.batch_size} "
                  f"→ {first.output_dir}", flush=True)
        _train_stage(first, accelerator, progress=progress)
        accelerator.free_memory()  # drop accelerate's references to the first stage's model and optimizer
    accelerator.wait_for_everyone()
    return recipe.model_copy(update={"train": recipe.train.model_copy(
        update={"encoder_stage": None, "init_from": str(final)})})


def train(recipe: Recipe, *, progress: bool = True) -> TrainResult:
    """Train as the recipe says and write ``OUTPUT_DIR/final`` (the ``save_pretrained`` artifact).

    With ``train.encoder_stage`` the encoder stage runs first (``OUTPUT_DIR/encoder_stage/``) and this stage
    starts from its artifact.
    """
    check_data(recipe, [recipe.data.train_split] + ([recipe.data.eval_split] if recipe.train.eval_every else []))
    accelerator = build_accelerator(recipe)  # one per job: both stages share its process group
    # the run is defined by the recipe as given (the encoder stage rewrites init_from below)
    settings = run_settings(recipe)
    if recipe.train.encoder_stage is not None and recipe.train.stage != "encoder":
        identity = run_identity(settings, accelerator.num_processes)  # refuse before the encoder stage runs
        decided_on_main(accelerator, lambda: choose_checkpoint(Path(recipe.output_dir), recipe.train.resume, identity))
        recipe = _run_encoder_stage(recipe, accelerator, progress)
    result = _train_stage(recipe, accelerator, progress=progress, settings=settings)
    accelerator.end_training()
    return result


def artifact_keys(model: Any) -> list[str] | None:
    """The state-dict keys ``MeitModel.save_pretrained`` reads, or None when it reads every tensor.

    A LoRA artifact of a base that is re-created from its source holds the encoder, projector, findings
    head and adapter: the frozen base weights are never read, so ZeRO-3 and FSDP need not gather them
    (a whole 13B base on rank 0 at the end of a run). Full fine-tuning and the tiny backbones (whose
    artifact holds the base) need every tensor. Should this drift from the artifact code, the save fails
    (the keys left out are data-less placeholders) rather than writing partitions.
    """
    if getattr(model, "lora_state", None) != "adapter" or model.backbone.is_tiny:
        return None
    return [key for key, value in model.state_dict(keep_vars=True).items()
            if not key.startswith("llm.") or "lora_" in key
            or (isinstance(value, torch.nn.Parameter) and value.requires_grad)]


def _train_stage(recipe: Recipe, accelerator: Any, *, progress: bool,
                 settings: dict[str, Any] | None = None) -> TrainResult:
    """One stage of :func:`train` on an accelerator built for the job (``settings``: what defines the run)."""
    output_dir = Path(recipe.output_dir)
    accelerator.gradient_accumulation_steps = recipe.train.grad_accum  # the stages may differ
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / "recipe.yaml", dump_recipe(recipe))

    model = build_model(recipe)
    if (recipe.train.stage == "encoder" or recipe.train.aux_findings_weight > 0) and model.finding_head is None:
        raise ConfigError(f"train.stage={recipe.train.stage} with train.aux_findings_weight="
                          f"{recipe.train.aux_findings_weight:g} trains a findings head: set model.finding_head=true"
                          + (" in the recipe of the train.init_from artifact" if recipe.train.init_from else ""))
    groups = model.trainable_parameter_groups(
        recipe.train.stage, recipe.train.train_encoder,
        train_finding_head=recipe.train.stage == "encoder" or recipe.train.aux_findings_weight > 0)
    if recipe.model.gradient_checkpointing:
        model.enable_gradient_checkpointing()

    train_set = build_split_dataset(recipe, model, recipe.data.train_split, recipe.data.max_train_samples, augment=True)
    eval_set = sample_set = None
    if recipe.train.eval_every:
        eval_set = build_split_dataset(recipe, model, recipe.data.eval_split, recipe.data.max_eval_samples)
        if recipe.train.sample_reports:
            sample_set = build_split_dataset(recipe, model, recipe.data.eval_split, recipe.train.sample_reports,
                                             with_report=False, fixed_instruction=evaluation_instruction())
    collator = EcgCollator(pad_token_id=model.tokenizer.pad_token_id, padding_side="right")
    train_loader = _loader(train_set, recipe, collator, shuffle=True, batch_size=recipe.train.batch_size)
    eval_loader = (
        _loader(eval_set, recipe, collator, shuffle=False, batch_size=recipe.train.batch_size) if eval_set else None
    )

    optimizer = build_optimizer(groups, recipe.train)
    batches_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes)
    total_steps = total_optimizer_steps(recipe.train, batches_per_epoch)
    scheduler = build_scheduler(optimizer, recipe.train, total_steps)

    configure_wrapping(accelerator, model)  # FSDP2: one unit per transformer block of the backbone
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)
    if recipe.train.trackers:
        accelerator.init_trackers("meit", config=flat_config(recipe))

    task = _InstructionTask(recipe, accelerator, eval_loader, sample_set)
    settings = LoopSettings.from_recipe(
        recipe, output_dir, total_steps, accelerator.num_processes,
        eval_every=recipe.train.eval_every if eval_loader is not None else None,
        run_settings=settings if settings is not None else run_settings(recipe))
    looped = run_loop(accelerator, model, optimizer, scheduler, train_loader, settings, task, progress=progress)

    final_dir = output_dir / "final"
    save_final(model, accelerator, final_dir, artifact_keys(accelerator.unwrap_model(model)))
    card_error = None
    if accelerator.is_main_process:
        atomic_write_text(final_dir / "recipe.yaml", dump_recipe(recipe))
        card_error = write_training_card(final_dir, accelerator.unwrap_model(model), recipe, RunFacts(
            identity=run_identity(settings.run_settings, accelerator.num_processes), steps=looped.steps,
            steps_this_session=len(looped.losses), seconds=looped.seconds, processes=accelerator.num_processes,
            batches_per_epoch=batches_per_epoch, final_loss=looped.losses[-1] if looped.losses else None,
            mixed_precision=str(accelerator.mixed_precision)))
    accelerator.wait_for_everyone()
    return TrainResult(final_dir=final_dir, steps=looped.steps, losses=looped.losses, val_losses=task.val_losses,
                       seconds=looped.seconds, card_error=card_error)
