"""Checkpoints for DeepSpeed, whose optimizer (ZeRO) and parameters (ZeRO-3) are partitioned per rank.

Every rank writes its own shard through ``accelerator.save_state`` (DeepSpeed's ``save_checkpoint``,
frozen base parameters excluded; accelerate adds each rank's own RNG states); rank 0 then publishes the
folder atomically exactly like the single-file checkpoints, so ``resume=auto`` and ``keep_last`` work
the same. Note that DeepSpeed and accelerate store these states with pickle: load only checkpoints you
wrote.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

from meit.errors import TrainingError
from meit.training.checkpoint import (
    accepts_state_dict,
    check_state_keys,
    meta_placeholders,
    publish_checkpoint,
    read_progress,
    save_from_gathered,
)

log = logging.getLogger(__name__)

#: the folder ``accelerator.save_state`` gives DeepSpeed's ``save_checkpoint`` (its checkpoint tag)
_DEEPSPEED_TAG = "pytorch_model"


def uses_sharded_state(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def save_sharded_checkpoint(root: Path, step: int, accelerator: Any, progress: dict[str, Any],
                            keep_last: int | None) -> Path:
    final, tmp = root / f"step-{step}", root / f".tmp-step-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), exclude_frozen_parameters=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        publish_checkpoint(tmp, final, {**progress, "step": step}, keep_last)
    accelerator.wait_for_everyone()
    return final


def check_sharded_checkpoint(path: Path, model: torch.nn.Module) -> None:
    """Refuse a DeepSpeed checkpoint whose trainable parameters are not exactly this model's.

    DeepSpeed loads with ``load_module_strict=False`` (the frozen base is not in the file), which would
    silently keep a missing part at its initial value. The names come from the ``param_shapes`` DeepSpeed
    records beside the module state (read with ``weights_only=True``).
    """
    files = sorted((path / _DEEPSPEED_TAG).glob("*model_states.pt"))
    if not files:
        raise TrainingError(f"checkpoint {path} was not written under DeepSpeed (no "
                            f"{_DEEPSPEED_TAG}/*model_states.pt): resume it with the launcher that wrote it")
    try:
        # mmap: only the names are needed (under ZeRO-2 the file also holds every trainable weight)
        states = torch.load(files[0], map_location="cpu", weights_only=True, mmap=True)
        saved = [name for group in states["param_shapes"] for name in group]
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as err:
        raise TrainingError(f"checkpoint {files[0]}: cannot read the parameter names DeepSpeed records "
                            f"({err})") from err
    expected = [n for n, p in model.named_parameters() if p.requires_grad]
    check_state_keys(files[0], saved, expected, what="parameters")


def load_sharded_checkpoint(path: Path, accelerator: Any) -> dict[str, Any]:
    accelerator.load_state(str(path), load_module_strict=False)
    return read_progress(path)


@torch.no_grad()
def gather_zero3_state(model: torch.nn.Module, keys: Collection[str] | None, main: bool) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` limited to ``keys`` as whole CPU tensors on rank 0 (empty elsewhere).

    Collective (every rank calls it, same order). One ZeRO-3 parameter is gathered at a time, so no rank
    holds more than one whole parameter beyond its partition; rank 0 keeps the copies in CPU memory.
    """
    import deepspeed

    wanted = None if keys is None else set(keys)
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        if wanted is not None and key not in wanted:
            continue
        if hasattr(value, "ds_id"):  # a partitioned parameter (buffers are not partitioned)
            with deepspeed.zero.GatheredParameters([value], modifier_rank=None):
                if main:
                    out[key] = value.detach().to("cpu", copy=True).contiguous()
        elif main:
            out[key] = value.detach().to("cpu", copy=True).contiguous()
    return out


def save_final_gathered(model: Any, accelerator: Any, final_dir: Path, keys: Collection[str] | None = None) -> None:
    """ZeRO-3 holds each parameter in pieces across ranks: gather what the artifact needs, rank 0 saves it.

    ``keys`` (the artifact's tensors, e.g. encoder, projector and LoRA but not the frozen base) limits the
    gather; None gathers everything. A model whose ``save_pretrained`` takes no ``state_dict`` is saved
    live inside one ``GatheredParameters`` over all its parameters.
    """
    import deepspeed

    unwrapped = accelerator.unwrap_model(model)
    main = accelerator.is_main_process
    if not accepts_state_dict(unwrapped):
        with deepspeed.zero.GatheredParameters(list(unwrapped.parameters()), modifier_rank=None):
            if main:
                unwrapped.save_pretrained(final_dir)
        return
    state = gather_zero3_state(unwrapped, keys, main)
    if main:
        full = unwrapped.state_dict(keep_vars=True)
        log.info("final artifact: gathered %d of %d tensors", len(state), len(full))
        save_from_gathered(unwrapped, final_dir, meta_placeholders(full, state))

