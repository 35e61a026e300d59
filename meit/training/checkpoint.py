"""Checkpoints of the trainable state only, written atomically, newest-complete found on resume.

A checkpoint folder becomes visible under its final name only after every file is written and
flushed (write into ``.tmp-step-N``, then ``meit.publish.publish_folder``), so a crash mid-save never leaves a folder
that looks complete. The frozen base model is never copied (it is rebuilt from the recipe).

Loading is strict: a checkpoint must hold exactly the tensors this model trains (missing or unexpected
names are an error), and it restores the random number generators of every rank to that rank's own
state. Which checkpoint a run may continue from is decided in :mod:`meit.training.resume`.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from meit.errors import TrainingError
from meit.publish import publish_folder

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step-(\d+)$")
COMPLETE_MARKER = "COMPLETE"
PROGRESS_FILE = "progress.json"
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


def check_state_keys(path: Path, saved: Iterable[str], expected: Iterable[str], what: str = "tensors") -> None:
    """Refuse a checkpoint whose tensor names differ from what this model trains (naming the differences).

    Loading only the overlap would leave a part at its fresh initialisation and call the run resumed.
    """
    saved, expected = set(saved), set(expected)
    missing, unexpected = sorted(expected - saved), sorted(saved - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} {what} this run trains, e.g. {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} {what} this run does not train, e.g. {unexpected[:5]}")
        raise TrainingError(f"checkpoint {path} does not fit this model: {'; '.join(parts)}. It was written by a "
                            "run with other trainable parts (train.stage, train.train_encoder, model.lora, …): "
                            "resume it with the recipe that wrote it, or set train.resume=null and choose a "
                            "fresh output_dir")


# ----------------------------------------------------------------------------------------------
# random number generators, per rank


def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch CPU and (when available) CUDA generator states."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Set this process's generators to ``state`` (from :func:`rng_state`)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if torch.cuda.is_available():
        if cuda is None:
            log.warning("the checkpoint has no CUDA generator states (written without a GPU): GPU random streams "
                        "start from the seed, so this resume is not exact")
        elif len(cuda) != torch.cuda.device_count():
            log.warning("the checkpoint has CUDA generator states of %d devices, this process sees %d: they are not "
                        "restored, so this resume is not exact", len(cuda), torch.cuda.device_count())
        else:
            torch.cuda.set_rng_state_all(list(cuda))
    elif cuda:
        log.warning("the checkpoint has CUDA generator states but CUDA is not available: not restored")


def all_rng_states(accelerator: Any) -> list[dict[str, Any]]:
    """Every rank's :func:`rng_state`, indexed by rank (collective: every rank calls it).

    Ranks draw different amounts of randomness (dropout over batches of different lengths), so each
    one must get its own state back on resume.
    """
    state = rng_state()
    if accelerator.num_processes == 1:
        return [state]
    import torch.distributed as dist

    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def restore_rank_rng(states: Any, path: Path, process_index: int, num_processes: int) -> None:
    """Give this rank its own saved generator states (a list written by :func:`all_rng_states`)."""
    if not isinstance(states, list) or len(states) != num_processes:
        count = len(states) if isinstance(states, list) else "no per-rank"
        raise TrainingError(f"checkpoint {path} holds {count} random-generator states; this run has {num_processes} "
                            "process(es): resume it with the world size that wrote it")
    restore_rng(states[process_index])


# ----------------------------------------------------------------------------------------------
# writing and finding checkpoints


def save_checkpoint(
    root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    progress: dict[str, Any],
    keep_last: int | None = None,
    rng_states: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``root/step-<step>`` atomically and prune to the newest ``keep_last`` complete ones.

    ``rng_states`` are those of every rank (:func:`all_rng_states`); default: this process's alone.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
         "rng": rng_states if rng_states is not None else [rng_state()]},
        tmp / "training_state.pt",
    )
    return publish_checkpoint(tmp, final, {**progress, "step": step}, keep_last)


def publish_checkpoint(tmp: Path, final: Path, progress: dict[str, Any], keep_last: int | None) -> Path:
    """Write the progress, mark ``tmp`` complete, publish it as ``final``, prune older checkpoints."""
    (tmp / PROGRESS_FILE).write_text(json.dumps(progress, indent=2))
    (tmp / COMPLETE_MARKER).write_text("ok\n")
    publish_folder(tmp, final, "checkpoint", also_owned_if=(COMPLETE_MARKER,))
    if keep_last:
        for old in complete_checkpoints(final.parent)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_step(path: Path) -> int | None:
    """N of a ``step-N`` folder name, else None."""
    match = _STEP_DIR.match(path.name)
    return int(match.group(1)) if match else None


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete ``step-N`` folders under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        step = checkpoint_step(child)
        if step is not None and (child / COMPLETE_MARKER).is_file():
            found.append((step, child))
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


def read_progress(path: Path) -> dict[str, Any]:
    """The ``progress.json`` of a checkpoint (step, position in the epoch, run identity)."""
    try:
        return json.loads((path / PROGRESS_FILE).read_text())
    except (OSError, ValueError) as err:
        raise TrainingError(f"checkpoint {path}: cannot read {PROGRESS_FILE} ({err}); it is not a complete meit "
                            "checkpoint") from err


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    process_index: int = 0, num_processes: int = 1) -> dict:
    """Restore trainable weights, optimizer, scheduler and this rank's RNG; return the saved progress."""
    if (path / FSDP_OPTIMIZER_FILE).is_file():
        raise TrainingError(f"checkpoint {path} was written under FSDP (name-keyed optimizer state): resume it "
                            "under FSDP")
    if not (path / "trainable.safetensors").is_file():
        raise TrainingError(f"checkpoint {path} has no trainable.safetensors (written under DeepSpeed?): resume it "
                            "with the launcher that wrote it")
    weights = load_file(str(path / "trainable.safetensors"))
    check_state_keys(path / "trainable.safetensors", weights, trainable_state_keys(model.state_dict(keep_vars=True)))
    params = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    state = torch.load(path / "training_state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rank_rng(state["rng"], path, process_index, num_processes)
    return read_progress(path)


def meta_placeholders(state: Mapping[str, torch.Tensor], gathered: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``gathered`` plus a data-less (``meta``) tensor of the right shape for every other key of ``state``.

    For a save that reads only some tensors of a sharded model: an API that wants the whole state dict
    gets one, and reading a tensor that was not gathered fails ("Cannot copy out of meta tensor")
    instead of writing a shard or an empty partition.
    """
    out: dict[str, Any] = {}
    for key, value in state.items():
        if key in gathered:
            out[key] = gathered[key]
        else:
            shape = getattr(value, "ds_shape", None)  # ZeRO-3 keeps the whole shape there
            shape = value.shape if shape is None else shape
            out[key] = torch.empty(shape, dtype=value.dtype, device="meta")
    return out


def accepts_state_dict(model: Any) -> bool:
    """Whether ``model.save_pretrained`` takes ``state_dict=`` (whole tensors gathered from shards)."""
    save = getattr(model, "save_pretrained", None)
    return save is not None and "state_dict" in inspect.signature(save).parameters


def save_from_gathered(model: Any, final_dir: Path, state: dict[str, Any]) -> None:
    """``model.save_pretrained(final_dir, state_dict=state)``, explaining a read of a tensor not gathered."""
    try:
        model.save_pretrained(final_dir, state_dict=state)
    except NotImplementedError as err:
        if "meta" not in str(err):
            raise
        raise TrainingError(f"writing {final_dir}: the artifact reads a tensor that the final save did not gather "
                            f"({err}); the key selection in meit/training/engine.py (artifact_keys) is out of date "
                            "with the model's save_pretrained") from err
