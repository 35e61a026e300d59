"""The optimisation loop every meit job shares (instruction tuning and encoder pretraining).

What is specific to a job — how a batch becomes a loss, what to evaluate, how to explain a failure —
comes in as a :class:`LoopTask`; everything else lives here once: accumulation, clipping, the
scheduler stepped only when gradients sync, checkpoints (single-file, DeepSpeed-sharded, or gathered
from FSDP2 shards), exact resume (only from a checkpoint of the same run, see ``resume.py``: restore
state and every rank's RNG, then skip the batches already seen in the epoch), evaluation that leaves
the training RNG streams untouched, the non-finite-loss stop (decided across ranks), the progress bar
with ETA, the JSONL log and accelerate's trackers.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from meit.errors import ConfigError, TrainingError
from meit.training.checkpoint import all_rng_states, load_checkpoint, restore_rng, rng_state, save_checkpoint
from meit.training.fsdp import (
    check_final_saving,
    load_fsdp_checkpoint,
    save_fsdp_checkpoint,
    save_fsdp_final,
    sync_buffers,
    uses_fsdp,
)
from meit.training.logs import JsonlLog
from meit.training.resume import choose_checkpoint, cut_log, decided_on_main, run_identity
from meit.training.sharded_checkpoint import (
    check_sharded_checkpoint,
    load_sharded_checkpoint,
    save_final_gathered,
    save_sharded_checkpoint,
    uses_sharded_state,
)

log = logging.getLogger(__name__)


class LoopTask(Protocol):
    """The job-specific parts of a training run."""

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The scalar loss of one micro-batch (the same value on every process)."""

    def evaluate(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        """Extra figures for the log every ``eval_every`` steps (all processes call it)."""

    def failure_context(self, batch: Any, step: int) -> contextlib.AbstractContextManager[None]:
        """Wraps forward/backward, e.g. to turn an out-of-memory error into advice."""


@dataclass(frozen=True)
class LoopSettings:
    output_dir: Path
    total_steps: int
    seed: int
    samples_per_step: int
    max_grad_norm: float | None = 1.0
    save_every: int | None = None
    keep_last: int = 2
    resume: str | None = None
    log_every: int = 10
    eval_every: int | None = None
    desc: str = "train"
    #: the recipe settings that define the run (``resume.run_settings``), recorded in every checkpoint and
    #: compared on resume; None records only the meit version and the world size
    run_settings: Mapping[str, Any] | None = None

    @classmethod
    def from_recipe(cls, recipe: Any, output_dir: Path, total_steps: int, num_processes: int, *,
                    run_settings: Mapping[str, Any] | None, desc: str = "train",
                    eval_every: int | None = None) -> LoopSettings:
        """The loop settings a recipe's ``train`` section (a :class:`~meit.config.LoopConfig`) and ``seed`` say."""
        train = recipe.train
        return cls(output_dir=output_dir, total_steps=total_steps, seed=recipe.seed,
                   samples_per_step=train.batch_size * train.grad_accum * num_processes,
                   max_grad_norm=train.max_grad_norm, save_every=train.save_every, keep_last=train.keep_last,
                   resume=train.resume, log_every=train.log_every, eval_every=eval_every, desc=desc,
                   run_settings=run_settings)


@dataclass
class LoopResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def run_loop(
    accelerator: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    train_loader: Any,
    settings: LoopSettings,
    task: LoopTask,
    *,
    progress: bool = True,
) -> LoopResult:
    """Optimise ``model`` (already passed through ``accelerator.prepare``) for ``settings.total_steps``."""
    output_dir = settings.output_dir
    is_main = accelerator.is_main_process
    trainable = [p for p in model.parameters() if p.requires_grad]
    jsonl = JsonlLog(output_dir / "logs" / "train.jsonl", enabled=is_main)
    fsdp = uses_fsdp(accelerator)
    check_final_saving(accelerator, model)
    # the norm accelerate returns is this step's only where it computes it (not DeepSpeed's, which lags)
    report_norm = bool(settings.max_grad_norm) and not uses_sharded_state(accelerator)

    step, epoch, batch_in_epoch = 0, 0, 0
    identity = run_identity(settings.run_settings, accelerator.num_processes)
    resume_from = decided_on_main(accelerator, lambda: choose_checkpoint(output_dir, settings.resume, identity))
    if resume_from is not None:
        if uses_sharded_state(accelerator):
            decided_on_main(accelerator, lambda: check_sharded_checkpoint(resume_from, accelerator.unwrap_model(model)))
            saved = load_sharded_checkpoint(resume_from, accelerator)
        elif fsdp:
            saved = load_fsdp_checkpoint(resume_from, model, optimizer, scheduler, accelerator)
        else:
            saved = load_checkpoint(resume_from, accelerator.unwrap_model(model), optimizer, scheduler,
                                    accelerator.process_index, accelerator.num_processes)
        step, epoch, batch_in_epoch = saved["step"], saved["epoch"], saved["batch_in_epoch"]
        log.info("resumed from %s (step %d, epoch %d, batch %d)", resume_from, step, epoch, batch_in_epoch)
    if is_main:
        cut_log(jsonl.path, step)  # what a killed run logged after its last checkpoint is logged again

    def save(name_suffix: str = "") -> Path:
        return save_training_state(output_dir, step, model, optimizer, scheduler, accelerator,
                                   {"epoch": epoch, "batch_in_epoch": batch_in_epoch, "seed": settings.seed,
                                    "run": identity},
                                   None if name_suffix else settings.keep_last, name_suffix)

    result = LoopResult(steps=step)
    first_step = step
    total = settings.total_steps
    bar = tqdm(total=total, initial=step, disable=not (progress and is_main), desc=settings.desc, unit="step")
    started = time.time()
    running: list[float] = []
    grad_norm: float | None = None
    model.train()
    while step < total:
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        dataset = getattr(train_loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):  # image augmentations are seeded per record and epoch
            dataset.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, batch_in_epoch) if batch_in_epoch else train_loader
        for batch in loader:
            with accelerator.accumulate(model), task.failure_context(batch, step):
                loss = task.loss(model, batch)
                bad = nonfinite_losses(loss, accelerator)  # the same answer on every rank
                if bad:
                    path = save("nonfinite")  # every rank takes part, then every rank raises the same error
                    ranks = f"rank{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))}"
                    where = "" if accelerator.num_processes == 1 else f" on {ranks} of {accelerator.num_processes}"
                    raise TrainingError(
                        f"loss became {', '.join(str(v) for v in bad.values())}{where} at step {step + 1} (epoch "
                        f"{epoch}, batch {batch_in_epoch}); state saved for debugging in {path}. Lower the learning "
                        "rate, or check the data for extreme values."
                    )
                accelerator.backward(loss)
                if accelerator.sync_gradients and settings.max_grad_norm:
                    # under FSDP2 `trainable` are DTensor shards: accelerate's DTensor-aware clipping
                    # computes the norm over the whole tensors (tested against one process)
                    norm = accelerator.clip_grad_norm_(trainable, settings.max_grad_norm)
                    grad_norm = _to_float(norm) if report_norm else None
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
            rate = settings.samples_per_step * (step - first_step) / max(time.time() - started, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.1f}")
            record: dict[str, Any] = {"step": step, "epoch": epoch, "loss": mean_loss, "lr": lr, "samples_per_s": rate}
            if grad_norm is not None:
                record["grad_norm"] = grad_norm
            evaluated = bool(settings.eval_every and step % settings.eval_every == 0)
            if evaluated:
                if fsdp:
                    sync_buffers(model, accelerator.device)  # evaluate with rank 0's BatchNorm statistics
                with preserved_rng():  # sample generation reseeds; training must not notice evaluations
                    figures = task.evaluate(model, step)
                model.train()
                record.update(figures)
                result.evaluations.append({"step": step, **figures})
            if step % settings.log_every == 0 or step == total or evaluated:
                jsonl.write(record)
                accelerator.log({k: v for k, v in record.items() if isinstance(v, int | float) and k != "step"},
                                step=step)
            if settings.save_every and step % settings.save_every == 0:
                save()
            if step >= total:
                break
        else:
            epoch += 1
            batch_in_epoch = 0
            continue
        break
    bar.close()
    result.steps = step
    result.seconds = time.time() - started
    return result


def save_training_state(output_dir: Path, step: int, model: Any, optimizer: Any, scheduler: Any, accelerator: Any,
                        progress: dict[str, Any], keep_last: int | None, name_suffix: str = "") -> Path:
    """A resumable checkpoint under ``OUTPUT_DIR/checkpoints[-suffix]/step-<N>``.

    Looked up by name at every save: ``tests/fault_hooks.py`` wraps it to kill a run right after a checkpoint.
    """
    root = output_dir / ("checkpoints" if not name_suffix else f"checkpoints-{name_suffix}")
    path = root / f"step-{step}"
    if uses_sharded_state(accelerator):
        return save_sharded_checkpoint(root, step, accelerator, progress, keep_last)
    if uses_fsdp(accelerator):
        return save_fsdp_checkpoint(root, step, model, optimizer, scheduler, accelerator, progress, keep_last)
    accelerator.wait_for_everyone()
    rng = all_rng_states(accelerator)
    if accelerator.is_main_process:
        path = save_checkpoint(root, step, accelerator.unwrap_model(model), optimizer, scheduler, progress,
                               keep_last=keep_last, rng_states=rng)
    accelerator.wait_for_everyone()
    return path


def save_final(model: Any, accelerator: Any, final_dir: Path, keys: Collection[str] | None = None) -> None:
    """``save_pretrained`` of the unwrapped model, gathering ZeRO-3 partitions or FSDP2 shards first.

    ``keys``: the state-dict keys the artifact writes when it does not need all of them (a LoRA adapter
    artifact: not the frozen base). Sharded runs then gather only those, and pass the model's
    ``save_pretrained(…, state_dict=…)`` data-less placeholders for the rest (reading one is an error).
    """
    accelerator.wait_for_everyone()
    if is_zero3(accelerator):
        save_final_gathered(model, accelerator, final_dir, keys)
    elif uses_fsdp(accelerator):
        save_fsdp_final(model, accelerator, final_dir, keys)
    elif accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(final_dir)
    accelerator.wait_for_everyone()


def nonfinite_losses(loss: torch.Tensor, accelerator: Any) -> dict[int, float]:
    """The non-finite micro-batch losses by rank; every rank gets the same answer (collective).

    Decided by one rank alone, that rank would go to the save-and-raise path while the others wait in
    their gradient all-reduce: the run would hang instead of stopping.
    """
    local = loss.detach().float().reshape(1)
    every = accelerator.gather(local) if accelerator.num_processes > 1 else local
    return {rank: value for rank, value in enumerate(every.cpu().tolist()) if not math.isfinite(value)}


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (evaluation, sample generation) without moving this rank's random number generators.

    Generation reseeds the global generators (on rank 0 only); validation may draw numbers too. Every
    rank calls this around the same block, so each one's training streams continue as if it had not run.
    """
    saved = rng_state()
    try:
        yield
    finally:
        restore_rng(saved)


def is_zero3(accelerator: Any) -> bool:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return uses_sharded_state(accelerator) and plugin is not None and plugin.zero_stage == 3


def shards_parameters(accelerator: Any) -> bool:
    """Each rank holds only part of every parameter (ZeRO-3, FSDP): a forward needs all ranks."""
    return is_zero3(accelerator) or uses_fsdp(accelerator)


def _to_float(norm: Any) -> float | None:
    if norm is None:
        return None
    if hasattr(norm, "full_tensor"):  # a DTensor (FSDP2)
        norm = norm.full_tensor()
    return float(norm)


def flat_config(config: Any) -> dict[str, Any]:
    """A pydantic recipe as ``{"section.key": scalar}`` for trackers (which want flat hyperparameters)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{key}.", value)
        else:
            flat[prefix.rstrip(".")] = node if isinstance(node, int | float | str | bool) else str(node)

    walk("", config.model_dump(mode="json"))
    return flat


@contextlib.contextmanager
def explain_oom(advice: str, what: str, step: int) -> Iterator[None]:
    """Turn an out-of-memory failure into an error that says what to change."""
    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as err:
        text = str(err)
        if not isinstance(err, torch.OutOfMemoryError) and "can't allocate memory" not in text:
            raise
        raise TrainingError(f"out of memory at step {step + 1} with {what}. {advice}") from err


def check_world_size(num_processes: int) -> None:
    """Refuse the silent trap of N independent single-process runs under a distributed launcher."""
    world = os.environ.get("WORLD_SIZE")
    if world is not None and int(world) != num_processes:
        raise ConfigError(
            f"WORLD_SIZE={world} but accelerate runs {num_processes} process(es): on CPU launch with "
            "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N … (see README)"
        )
