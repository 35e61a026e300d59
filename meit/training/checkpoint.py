"""Checkpoints of the trainable state only, written atomically, newest-complete found on resume.

A checkpoint folder becomes visible under its final name only after every file is written and
flushed (write into ``.tmp-step-N``, then ``meit.publish.publish_folder``), so a crash mid-save never leaves a folder
that looks complete. The frozen base model is never copied (it is rebuilt from the recipe).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from meit.errors import TrainingError
from meit.publish import publish_folder

_STEP_DIR = re.compile(r"^step-(\d+)$")
COMPLETE_MARKER = "COMPLETE"
#: present only in checkpoints written under FSDP (optimizer state keyed by parameter name, see fsdp.py)
FSDP_OPTIMIZER_FILE = "optimizer.pt"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters plus the buffers of the modules that own them (e.g. BatchNorm running stats)."""
    state = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    for prefix, module in model.named_modules():
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            for name, buffer in module.named_buffers(recurse=False):
                if buffer is not None and name not in module._non_persistent_buffers_set:
                    state[f"{prefix}.{name}" if prefix else name] = buffer.detach().contiguous().cpu()
    return state


def trainable_state_keys(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The keys :func:`trainable_state` keeps, read from ``model.state_dict(keep_vars=True)``.

    The same rule in state-dict names (which stay correct when wrappers such as FSDP2 or activation
    checkpointing sit in between): trainable parameters, plus the persistent buffers of the modules
    that directly own a trainable parameter.
    """
    trainable = {k for k, v in state.items() if isinstance(v, torch.nn.Parameter) and v.requires_grad}
    owners = {k.rpartition(".")[0] for k in trainable}
    return [k for k, v in state.items()
            if k in trainable or (not isinstance(v, torch.nn.Parameter) and k.rpartition(".")[0] in owners)]


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    progress: dict[str, Any],
    keep_last: int | None = None,
) -> Path:
    """Write ``root/step-<step>`` atomically and prune to the newest ``keep_last`` complete ones."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
        tmp / "training_state.pt",
    )
    return publish_checkpoint(tmp, final, {**progress, "step": step}, keep_last)


def publish_checkpoint(tmp: Path, final: Path, progress: dict[str, Any], keep_last: int | None) -> Path:
    """Write the progress, mark ``tmp`` complete, publish it as ``final``, prune older checkpoints."""
    (tmp / "progress.json").write_text(json.dumps(progress, indent=2))
    (tmp / COMPLETE_MARKER).write_text("ok\n")
    publish_folder(tmp, final, "checkpoint", also_owned_if=(COMPLETE_MARKER,))
    if keep_last:
        for old in complete_checkpoints(final.parent)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete ``step-N`` folders under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / COMPLETE_MARKER).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def find_resume_checkpoint(output_dir: Path, resume: str | None) -> Path | None:
    """``auto`` → newest complete checkpoint (or None); a path → that checkpoint (must be complete)."""
    if resume is None:
        return None
    if resume == "auto":
        found = complete_checkpoints(output_dir / "checkpoints")
        return found[-1] if found else None
    path = Path(resume)
    if not (path / COMPLETE_MARKER).is_file():
        raise TrainingError(f"train.resume={resume}: not a complete checkpoint folder (no {COMPLETE_MARKER} file)")
    return path


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict:
    """Restore trainable weights, optimizer, scheduler and RNG; return the saved progress."""
    if (path / FSDP_OPTIMIZER_FILE).is_file():
        raise TrainingError(f"checkpoint {path} was written under FSDP (name-keyed optimizer state): resume it "
                            "under FSDP")
    weights = load_file(str(path / "trainable.safetensors"))
    params = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    unknown = [name for name in weights if name not in params]
    if unknown:
        raise TrainingError(f"checkpoint {path} has parameters this model lacks: {unknown[:5]} …")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    state = torch.load(path / "training_state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng(state["rng"])
    return json.loads((path / "progress.json").read_text())
