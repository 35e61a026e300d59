"""``meit train``: one loop for 1 process, DDP, DeepSpeed and FSDP, all through accelerate.

Determinism and exact resume follow what was measured on this stack (FACTS §5): a seedable sampler
with an explicit data seed, ``set_epoch`` every epoch, scheduler stepped only when gradients sync,
resume = restore state then skip the batches already seen in the current epoch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from meit.config import Recipe, dump_recipe
from meit.data.collator import EcgCollator, LengthGroupedSampler, model_inputs
from meit.data.dataset import evaluation_instruction
from meit.errors import ConfigError, TrainingError
from meit.evaluation.generation import DecodingSettings, generate_reports
from meit.training.checkpoint import find_resume_checkpoint, load_checkpoint, save_checkpoint
from meit.training.logs import JsonlLog
from meit.training.optim import build_optimizer, build_scheduler, total_optimizer_steps
from meit.training.setup import build_accelerator, build_model, build_split_dataset, check_data
from meit.training.sharded_checkpoint import (
    load_sharded_checkpoint,
    save_final_gathered,
    save_sharded_checkpoint,
    uses_sharded_state,
)

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    final_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0


def _loader(dataset: Any, recipe: Recipe, collator: EcgCollator, shuffle: bool, batch_size: int) -> DataLoader:
    generator = torch.Generator().manual_seed(recipe.seed)
    sampler = None
    if shuffle and recipe.data.group_by_length:
        sampler = LengthGroupedSampler(dataset.token_lengths(), batch_size, seed=recipe.seed)
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
        out = model(**inputs)
        tokens = (inputs["labels"][:, 1:] != -100).sum()
        total += torch.stack([out.loss.double() * tokens, tokens.double()])
    total = accelerator.reduce(total, reduction="sum")
    model.train()
    return float(total[0] / total[1].clamp(min=1))


def train(recipe: Recipe, *, progress: bool = True) -> TrainResult:
    """Train as the recipe says and write ``OUTPUT_DIR/final`` (the ``save_pretrained`` artifact)."""
    output_dir = Path(recipe.output_dir)
    check_data(recipe, [recipe.data.train_split] + ([recipe.data.eval_split] if recipe.train.eval_every else []))
    accelerator = build_accelerator(recipe)
    is_main = accelerator.is_main_process
    if is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "recipe.yaml").write_text(dump_recipe(recipe))

    model = build_model(recipe)
    groups = model.trainable_parameter_groups(recipe.train.stage, recipe.train.train_encoder)
    if recipe.model.gradient_checkpointing:
        model.enable_gradient_checkpointing()

    train_set = build_split_dataset(recipe, model, recipe.data.train_split, recipe.data.max_train_samples)
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

    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)
    trainable = [p for p in model.parameters() if p.requires_grad]

    jsonl = JsonlLog(output_dir / "logs" / "train.jsonl", enabled=is_main)
    if recipe.train.trackers:
        accelerator.init_trackers("meit", config=_flat_config(recipe))

    step, epoch, batch_in_epoch = 0, 0, 0
    resume_from = find_resume_checkpoint(output_dir, recipe.train.resume)
    if resume_from is not None:
        if uses_sharded_state(accelerator):
            saved = load_sharded_checkpoint(resume_from, accelerator)
        else:
            saved = load_checkpoint(resume_from, accelerator.unwrap_model(model), optimizer, scheduler)
        step, epoch, batch_in_epoch = saved["step"], saved["epoch"], saved["batch_in_epoch"]
        log.info("resumed from %s (step %d, epoch %d, batch %d)", resume_from, step, epoch, batch_in_epoch)

    result = TrainResult(final_dir=output_dir / "final", steps=step)
    samples_per_step = recipe.train.batch_size * recipe.train.grad_accum * accelerator.num_processes
    bar = tqdm(total=total_steps, initial=step, disable=not (progress and is_main), desc="train", unit="step")
    started = time.time()
    running: list[float] = []
    model.train()
    while step < total_steps:
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, batch_in_epoch) if batch_in_epoch else train_loader
        for batch in loader:
            with accelerator.accumulate(model), _explain_oom(recipe, batch, step):
                out = model(**model_inputs(batch))
                loss = out.loss
                if not torch.isfinite(loss.detach()):
                    path = _save(output_dir, step, model, optimizer, scheduler, epoch, batch_in_epoch, accelerator,
                                 recipe, name_suffix="nonfinite")
                    raise TrainingError(
                        f"loss became {loss.item()} at step {step + 1} (epoch {epoch}, batch {batch_in_epoch}); "
                        f"state saved for debugging in {path}. Lower train.lr, or check the data for extreme values."
                    )
                accelerator.backward(loss)
                if accelerator.sync_gradients and recipe.train.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable, recipe.train.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            batch_in_epoch += 1
            running.append(float(loss.detach()))
            if not accelerator.sync_gradients:
                continue
            step += 1
            mean_loss = float(accelerator.reduce(torch.tensor(sum(running) / len(running),
                                                              device=accelerator.device), "mean"))
            running.clear()
            result.losses.append(mean_loss)
            lr = scheduler.get_last_lr()[0]
            elapsed = time.time() - started
            rate = samples_per_step * (step - result.steps) / max(elapsed, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.1f}")
            record = {"step": step, "epoch": epoch, "loss": mean_loss, "lr": lr, "samples_per_s": rate}
            if eval_loader is not None and recipe.train.eval_every and step % recipe.train.eval_every == 0:
                record["val_loss"] = validation_loss(model, eval_loader, accelerator)
                result.val_losses.append((step, record["val_loss"]))
                if sample_set is not None and is_main and not _zero3(accelerator):
                    record["samples"] = generate_reports(
                        accelerator.unwrap_model(model), sample_set,
                        DecodingSettings(max_new_tokens=recipe.eval.max_new_tokens, seed=recipe.seed),
                        batch_size=len(sample_set), progress=False)
                    model.train()
            if step % recipe.train.log_every == 0 or step == total_steps or "val_loss" in record:
                jsonl.write(record)
                accelerator.log({k: v for k, v in record.items() if k not in ("step", "samples")}, step=step)
            if recipe.train.save_every and step % recipe.train.save_every == 0:
                _save(output_dir, step, model, optimizer, scheduler, epoch, batch_in_epoch, accelerator, recipe)
                _maybe_inject_crash(step)
            if step >= total_steps:
                break
        else:
            epoch += 1
            batch_in_epoch = 0
            continue
        break
    bar.close()
    accelerator.wait_for_everyone()
    if _zero3(accelerator):
        save_final_gathered(model, accelerator, result.final_dir)
    elif is_main:
        accelerator.unwrap_model(model).save_pretrained(result.final_dir)
    if is_main:
        (result.final_dir / "recipe.yaml").write_text(dump_recipe(recipe))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    result.steps = step
    result.seconds = time.time() - started
    return result


def _save(output_dir: Path, step: int, model: Any, optimizer: Any, scheduler: Any, epoch: int, batch_in_epoch: int,
          accelerator: Any, recipe: Recipe, name_suffix: str = "") -> Path:
    root = output_dir / ("checkpoints" if not name_suffix else f"checkpoints-{name_suffix}")
    path = root / f"step-{step}"
    progress = {"epoch": epoch, "batch_in_epoch": batch_in_epoch, "seed": recipe.seed}
    keep_last = None if name_suffix else recipe.train.keep_last
    if uses_sharded_state(accelerator):
        return save_sharded_checkpoint(root, step, accelerator, progress, keep_last)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        path = save_checkpoint(root, step, accelerator.unwrap_model(model), optimizer, scheduler, progress,
                               keep_last=keep_last)
    accelerator.wait_for_everyone()
    return path


def _zero3(accelerator: Any) -> bool:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return uses_sharded_state(accelerator) and plugin is not None and plugin.zero_stage == 3


def _flat_config(recipe: Recipe) -> dict[str, Any]:
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{key}.", value)
        else:
            flat[prefix.rstrip(".")] = node if isinstance(node, int | float | str | bool) else str(node)

    walk("", recipe.model_dump(mode="json"))
    return flat


@contextlib.contextmanager
def _explain_oom(recipe: Recipe, batch: dict[str, Any], step: int) -> Iterator[None]:
    """Turn an out-of-memory failure into an error that says what to change."""
    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as err:
        text = str(err)
        if not isinstance(err, torch.OutOfMemoryError) and "can't allocate memory" not in text:
            raise
        shape = tuple(batch["input_ids"].shape)
        raise TrainingError(
            f"out of memory at step {step + 1} with a batch of {shape[0]} × {shape[1]} tokens "
            f"(model.llm={recipe.model.llm}). Lower train.batch_size and raise train.grad_accum to keep the "
            "effective batch, set model.gradient_checkpointing=true, lower model.max_length, load the base in "
            "4 bits (model.quantization=4bit), or launch with a DeepSpeed ZeRO-3 offload config "
            "(recipes/accelerate/deepspeed_zero3_offload.yaml)."
        ) from err


def _maybe_inject_crash(step: int) -> None:
    """Fault injection for resume tests: ``MEIT_CRASH_AFTER_CHECKPOINT=N`` SIGKILLs the run after step N's save."""
    target = os.environ.get("MEIT_CRASH_AFTER_CHECKPOINT")
    if target is not None and int(target) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def check_world_size(num_processes: int) -> None:
    """Refuse the silent trap of N independent single-process runs under a distributed launcher."""
    world = os.environ.get("WORLD_SIZE")
    if world is not None and int(world) != num_processes:
        raise ConfigError(
            f"WORLD_SIZE={world} but accelerate runs {num_processes} process(es): on CPU launch with "
            "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N … (see README)"
        )
