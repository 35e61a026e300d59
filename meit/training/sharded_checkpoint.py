"""Checkpoints for DeepSpeed, whose optimizer (ZeRO) and parameters (ZeRO-3) are partitioned per rank.

Every rank writes its own shard through ``accelerator.save_state`` (DeepSpeed's ``save_checkpoint``,
frozen base parameters excluded); rank 0 then publishes the folder atomically exactly like the
single-file checkpoints, so ``resume=auto`` and ``keep_last`` work the same. Note that DeepSpeed and
accelerate store these states with pickle: load only checkpoints you wrote.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from meit.training.checkpoint import publish_checkpoint


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


def load_sharded_checkpoint(path: Path, accelerator: Any) -> dict[str, Any]:
    accelerator.load_state(str(path), load_module_strict=False)
    return json.loads((path / "progress.json").read_text())


def save_final_gathered(model: Any, accelerator: Any, final_dir: Path) -> None:
    """ZeRO-3 holds each parameter in pieces across ranks: gather them, then rank 0 saves the artifact."""
    import deepspeed

    unwrapped = accelerator.unwrap_model(model)
    with deepspeed.zero.GatheredParameters(list(unwrapped.parameters()), modifier_rank=None):
        if accelerator.is_main_process:
            unwrapped.save_pretrained(final_dir)
