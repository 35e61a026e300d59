"""FSDP2 (``fully_shard``) through accelerate: checks, layer wrapping, and whole tensors out of shards.

Under FSDP2 every parameter is a ``DTensor`` holding 1/N of the tensor on each rank, so anything that
reads parameters as whole tensors must gather first. Gathering is a collective: every rank calls the
functions below in the same order, and rank 0 alone writes.

* Checkpoints (``OUTPUT_DIR/checkpoints/step-N``): ``trainable.safetensors`` holds exactly what a
  single-process checkpoint holds (trainable parameters plus the persistent buffers of the modules that
  own them, under the same unwrapped names); ``optimizer.pt`` the full, unsharded optimizer state keyed
  by parameter name (``torch.distributed.checkpoint.state_dict``); ``training_state.pt`` the scheduler and
  every rank's RNG states. Rank 0 publishes the folder atomically (``checkpoint.publish_checkpoint``), so
  ``resume=auto`` and ``keep_last`` behave as everywhere else. Resume loads on rank 0 and broadcasts into
  the shards (the checkpoint must hold exactly the tensors this model trains); each rank restores its
  own RNG states.
* The final artifact: every rank gathers the tensors the artifact writes (all of them, or only those
  given, e.g. not the frozen base of a LoRA run), rank 0 passes them to the model's
  ``save_pretrained(directory, state_dict=…)``.
* FSDP does not synchronise buffers (DDP broadcasts rank 0's before every forward): rank 0's BatchNorm
  statistics are broadcast before every save and every evaluation, which gives exactly what DDP saves.

Only FSDP2 is supported; FSDP1 (``fsdp_version: 1``) is refused, see ``docs/training.md``.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from meit.errors import ConfigError, TrainingError
from meit.training.checkpoint import (
    FSDP_OPTIMIZER_FILE,
    accepts_state_dict,
    all_rng_states,
    check_state_keys,
    meta_placeholders,
    publish_checkpoint,
    read_progress,
    restore_rank_rng,
    save_from_gathered,
    trainable_state_keys,
)

log = logging.getLogger(__name__)

#: Testing aid: make accelerate run FSDP2 on CPU processes (it never selects FSDP on CPU by itself).
FORCE_FSDP_ON_CPU_ENV = "MEIT_FORCE_FSDP_ON_CPU"

_FSDP1_REFUSED = (
    "FSDP1 (fsdp_version: 1) is not supported by meit: set fsdp_version: 2 in the accelerate config "
    "(recipes/accelerate/fsdp.yaml does). FSDP1 needs use_orig_params=True for a partly frozen model, "
    "its full-state-dict gather crashes with CPU offload on torch 2.13, and accelerate's clip_grad_norm_ "
    "computes a per-shard norm for a subset of its parameters (docs/training.md)."
)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def fsdp_requested() -> bool:
    """The launcher asked for FSDP (``accelerate launch`` with an FSDP config sets ``ACCELERATE_USE_FSDP``)."""
    return _env_true("ACCELERATE_USE_FSDP")


def uses_fsdp(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


# ----------------------------------------------------------------------------------------------
# accelerator set-up


def cpu_testing_plugin() -> Any:
    """The FSDP2 plugin when ``MEIT_FORCE_FSDP_ON_CPU=1`` asks to force FSDP on CPU, else None.

    TESTING AID ONLY. accelerate 1.15 never selects FSDP when it runs on CPU (``state.py``: FSDP is only
    chosen for ``MULTI_<accelerator>`` types; ``MULTI_CPU`` falls back to DDP), which leaves the FSDP
    paths untestable on a CPU machine. With this variable set, :func:`force_fsdp_state` overwrites
    accelerate's private shared state after construction so the real engine runs FSDP2 over gloo.
    It refuses to act on a machine with a GPU (accelerate selects FSDP there by itself), without an
    FSDP launch config, under DeepSpeed, or for FSDP1.
    """
    if not _env_true(FORCE_FSDP_ON_CPU_ENV):
        return None
    if torch.cuda.is_available():
        raise ConfigError(f"{FORCE_FSDP_ON_CPU_ENV}=1 is a CPU testing aid; with a GPU accelerate selects FSDP "
                          "itself: unset the variable")
    if _env_true("ACCELERATE_USE_DEEPSPEED"):
        raise ConfigError(f"{FORCE_FSDP_ON_CPU_ENV}=1 cannot be combined with DeepSpeed")
    if not fsdp_requested():
        raise ConfigError(f"{FORCE_FSDP_ON_CPU_ENV}=1 needs an FSDP launch: accelerate launch --config_file "
                          "recipes/accelerate/fsdp.yaml --num_processes 2 …")
    from accelerate.utils import FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables accelerate launch exported
    if plugin.fsdp_version != 2:
        raise ConfigError(_FSDP1_REFUSED)
    return plugin


def force_fsdp_state(accelerator: Any, plugin: Any) -> None:
    """Make an already-built CPU ``Accelerator`` run FSDP2 (see :func:`cpu_testing_plugin`)."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        log.warning("accelerate selected FSDP on CPU by itself: %s is no longer needed (remove the hook in "
                    "meit/training/fsdp.py)", FORCE_FSDP_ON_CPU_ENV)
        return
    if accelerator.distributed_type != DistributedType.MULTI_CPU:
        raise ConfigError(f"{FORCE_FSDP_ON_CPU_ENV}=1 needs several CPU processes (accelerate chose "
                          f"{accelerator.distributed_type}); launch with --num_processes 2 or more")
    log.warning("%s=1: accelerate chose %s; forcing FSDP2 through accelerate's private state "
                "(testing aid, not a supported configuration)", FORCE_FSDP_ON_CPU_ENV, accelerator.distributed_type)
    AcceleratorState._shared_state["distributed_type"] = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    AcceleratorState._shared_state["fsdp_plugin"] = plugin
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)


def check_fsdp(accelerator: Any) -> None:
    """Refuse FSDP1; say so when an FSDP launch silently runs as DDP (accelerate does that on CPU)."""
    if uses_fsdp(accelerator):
        if accelerator.state.fsdp_plugin.fsdp_version != 2:
            raise ConfigError(_FSDP1_REFUSED)
    elif fsdp_requested() and accelerator.num_processes > 1:
        log.warning("an FSDP config was launched but accelerate runs %s (it never selects FSDP on CPU): this is "
                    "a DDP run. %s=1 forces FSDP2 on CPU for testing.", accelerator.distributed_type,
                    FORCE_FSDP_ON_CPU_ENV)


def decoder_layer_classes(model: torch.nn.Module) -> list[str]:
    """Class names of the transformer blocks, from transformers' ``_no_split_modules`` of the backbone.

    Works for every registered family without a table: each transformers model lists its decoder layer
    class there (``LlamaDecoderLayer``, ``GPT2Block``, ``Qwen2DecoderLayer``, …). Only names of classes
    present in ``model`` are returned (multimodal models also list vision blocks).
    """
    present = {type(m).__name__ for m in model.modules()}
    listed: set[str] = set()
    for module in model.modules():
        listed.update(getattr(module, "_no_split_modules", None) or ())
    return sorted(listed & present)


def configure_wrapping(accelerator: Any, model: torch.nn.Module) -> None:
    """Before ``accelerator.prepare``: shard each transformer block as its own FSDP2 unit.

    With ``fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP`` and no ``fsdp_transformer_layer_cls_to_wrap``,
    accelerate reads ``_no_split_modules`` of the model it is given, which a meit model (encoder +
    projector + LLM) does not have, so everything would become one unit; this fills in the backbone's
    decoder layer classes instead. Names given in the config are checked against the model. The rest
    (encoder, projector, embeddings, head) forms the root unit.
    """
    if not uses_fsdp(accelerator):
        return
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    plugin = accelerator.state.fsdp_plugin
    policy = plugin.auto_wrap_policy
    if isinstance(policy, functools.partial):
        policy = policy.func
    if policy is not transformer_auto_wrap_policy:
        return
    found = decoder_layer_classes(model)
    names = list(plugin.transformer_cls_names_to_wrap or [])
    if names:
        present = {type(m).__name__ for m in model.modules()}
        missing = [n for n in names if n not in present]
        if missing:
            raise ConfigError(
                f"fsdp_transformer_layer_cls_to_wrap names {missing}, which this model does not contain (its "
                f"backbone's layer classes: {found or 'none listed'}); remove the key to let meit choose")
    else:
        names = found
        plugin.transformer_cls_names_to_wrap = names
        if not names:
            log.warning("FSDP2: the backbone lists no transformer layer classes (_no_split_modules); the whole "
                        "model is one FSDP unit. Set fsdp_transformer_layer_cls_to_wrap in the accelerate config.")
    if accelerator.is_main_process:
        count = sum(type(m).__name__ in names for m in model.modules())
        log.info("FSDP2 units: %d × %s, plus the root (encoder, projector, embeddings, head)", count,
                 ", ".join(names) or "none")


def check_final_saving(accelerator: Any, model: Any) -> None:
    """Fail before training when the final artifact could not be written from gathered tensors."""
    if not uses_fsdp(accelerator):
        return
    if not accepts_state_dict(accelerator.unwrap_model(model)):
        raise ConfigError(f"FSDP: {type(accelerator.unwrap_model(model)).__name__}.save_pretrained must accept "
                          "state_dict= (the live parameters are shards); use DDP or DeepSpeed for this job")


# ----------------------------------------------------------------------------------------------
# whole tensors out of shards


def _whole(value: torch.Tensor) -> torch.Tensor:
    """The full tensor behind a (possibly sharded) value; collective for a DTensor."""
    from torch.distributed.tensor import DTensor

    if isinstance(value, DTensor):
        if value.device.type != value.device_mesh.device_type:  # shards offloaded to CPU
            value = value.to(value.device_mesh.device_type)
        value = value.full_tensor()
    return value


@torch.no_grad()
def gather_state(model: torch.nn.Module, keys: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` as whole CPU tensors on rank 0 (empty elsewhere), limited to ``keys``.

    Collective: every rank must call it. One tensor is gathered at a time, so no rank ever holds more
    than one whole tensor beyond its shards, and rank 0 accumulates the result in CPU memory.
    """
    import torch.distributed as dist

    wanted = None if keys is None else set(keys)
    main = not dist.is_initialized() or dist.get_rank() == 0
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        if wanted is not None and key not in wanted:
            continue
        whole = _whole(value.detach())
        if main:
            out[key] = whole.to("cpu", copy=True).contiguous()
    return out


@torch.no_grad()
def sync_buffers(model: torch.nn.Module, device: torch.device) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), as DDP does before each forward.

    Rank 0's buffers only ever change by its own forwards, so what is saved is exactly what DDP saves.
    """
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for buffer in model.buffers():
        if buffer.numel():
            by_dtype.setdefault(buffer.dtype, []).append(buffer)
    for dtype in sorted(by_dtype, key=str):  # the same order on every rank
        buffers = by_dtype[dtype]
        flat = torch.cat([b.detach().reshape(-1).to(device) for b in buffers])
        dist.broadcast(flat, src=0)
        offset = 0
        for b in buffers:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


def _inner_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it


def _agree(accelerator: Any, message: str | None) -> None:
    """Raise ``TrainingError(message)`` on every rank when rank 0 found a problem (avoids a hang)."""
    import torch.distributed as dist

    box = [message]
    dist.broadcast_object_list(box, src=0)
    if box[0]:
        raise TrainingError(box[0])


# ----------------------------------------------------------------------------------------------
# checkpoints and the final artifact


def save_fsdp_checkpoint(root: Path, step: int, model: Any, optimizer: Any, scheduler: Any, accelerator: Any,
                         progress: dict[str, Any], keep_last: int | None) -> Path:
    """Write ``root/step-<step>`` (see the module docstring); every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    sync_buffers(model, accelerator.device)
    weights = gather_state(model, trainable_state_keys(model.state_dict(keep_vars=True)))
    optim = get_optimizer_state_dict(model, _inner_optimizer(optimizer),
                                     options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    rng = all_rng_states(accelerator)
    final = root / f"step-{step}"
    if accelerator.is_main_process:
        tmp = root / f".tmp-step-{step}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(weights, str(tmp / "trainable.safetensors"))
        torch.save(optim, tmp / FSDP_OPTIMIZER_FILE)
        torch.save({"scheduler": scheduler.state_dict(), "rng": rng}, tmp / "training_state.pt")
        publish_checkpoint(tmp, final, {**progress, "step": step}, keep_last)
    accelerator.wait_for_everyone()
    return final


def load_fsdp_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, accelerator: Any) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_fsdp_checkpoint` into the shards; return its progress."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    main = accelerator.is_main_process
    weights: dict[str, torch.Tensor] = {}
    problem = None
    if main:
        if not (path / FSDP_OPTIMIZER_FILE).is_file():
            problem = (f"checkpoint {path} was not written under FSDP (no {FSDP_OPTIMIZER_FILE}); resume it with the "
                       "launcher that wrote it")
        else:
            weights = load_file(str(path / "trainable.safetensors"))
            try:
                check_state_keys(path / "trainable.safetensors", weights,
                                 trainable_state_keys(model.state_dict(keep_vars=True)))
            except TrainingError as err:
                problem = str(err)
    _agree(accelerator, problem)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
    set_model_state_dict(model, weights, options=options)
    optim = torch.load(path / FSDP_OPTIMIZER_FILE, weights_only=True) if main else {}
    set_optimizer_state_dict(model, _inner_optimizer(optimizer), optim,
                             options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    state = torch.load(path / "training_state.pt", weights_only=True)
    scheduler.load_state_dict(state["scheduler"])
    restore_rank_rng(state["rng"], path, accelerator.process_index, accelerator.num_processes)
    return read_progress(path)


def save_fsdp_final(model: Any, accelerator: Any, final_dir: Path, keys: Collection[str] | None = None) -> None:
    """Gather the artifact's tensors on rank 0 (CPU) and write ``save_pretrained(final_dir, state_dict=…)``.

    ``keys`` limits the gather (e.g. a LoRA artifact does not hold the frozen base); None gathers the whole
    model. The keys not gathered reach ``save_pretrained`` as data-less placeholders.
    """
    sync_buffers(model, accelerator.device)
    state = gather_state(model, keys)
    if accelerator.is_main_process:
        full = model.state_dict(keep_vars=True)
        log.info("final artifact: gathered %d of %d tensors", len(state), len(full))
        save_from_gathered(accelerator.unwrap_model(model), final_dir, meta_placeholders(full, state))
