"""Build what a run needs from a recipe: the accelerator, the model and the datasets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from meit.config import Recipe
from meit.data.dataset import EcgReportDataset, get_split, load_prepared, load_split, report_dataset
from meit.data.prompts import PromptFormat
from meit.data.stored_rate import data_rate
from meit.errors import ConfigError


def _uses_deepspeed() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in {"1", "true", "yes"}


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated
    and slower than fp32. Read from the kernel's CPU flags (Linux); unknown counts as no."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def resolve_mixed_precision(recipe: Recipe) -> str:
    """``auto`` → bf16 on a GPU that supports it, fp32 on CPU; ``bf16-native`` → also bf16 on a CPU that
    computes it natively (`python -m meit.bench train-step`, 2 Zen 4 cores: 2.3 s vs 3.2 s a SmolLM2 step)."""
    choice = recipe.train.mixed_precision
    if choice not in ("auto", "bf16-native"):
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if choice == "bf16-native" and cpu_has_native_bf16() else "no"


def build_accelerator(recipe: Recipe) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DataLoaderConfiguration, InitProcessGroupKwargs, ProjectConfiguration, set_seed

    from meit.training.fsdp import check_fsdp, cpu_testing_plugin, force_fsdp_state
    from meit.training.loop import check_world_size

    on_cpu = not torch.cuda.is_available()
    handlers = []
    if on_cpu and _uses_deepspeed():
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    # MEIT_FORCE_FSDP_ON_CPU=1: testing aid that runs FSDP2 on CPU processes (see meit/training/fsdp.py)
    forced_fsdp = cpu_testing_plugin()
    # accelerate keeps one process-wide state and refuses a second Accelerator with other settings (a bench
    # suite or a notebook training recipes of different precision in one process): each run sets its own;
    # the process group (PartialState) is kept
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(
        cpu=on_cpu and not _uses_deepspeed(),
        fsdp_plugin=forced_fsdp,
        mixed_precision=resolve_mixed_precision(recipe),
        gradient_accumulation_steps=recipe.train.grad_accum,
        step_scheduler_with_optimizer=False,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=recipe.seed),
        log_with=recipe.train.trackers or None,
        project_config=ProjectConfiguration(project_dir=recipe.output_dir, logging_dir=f"{recipe.output_dir}/logs"),
        kwargs_handlers=handlers,
    )
    if forced_fsdp is not None:
        force_fsdp_state(accelerator, forced_fsdp)
    check_fsdp(accelerator)
    check_world_size(accelerator.num_processes)
    set_seed(recipe.seed)
    return accelerator


def base_loads_partitioned() -> bool:
    """Whether transformers builds models under ``deepspeed.zero.Init`` now (each process holds a partition).

    accelerate 1.16 hands transformers its DeepSpeed config as soon as a ZeRO-3 plugin is selected, whatever
    ``zero3_init_flag`` says (checked on this stack), so under ZeRO-3 the base is always loaded partitioned.
    """
    try:
        from transformers.integrations import is_deepspeed_zero3_enabled
    except ImportError:  # pragma: no cover - transformers without its DeepSpeed integration
        return False
    return bool(is_deepspeed_zero3_enabled())


def build_model(recipe: Recipe) -> Any:
    """A fresh model from the recipe, or the previous stage's artifact when ``train.init_from`` is set."""
    from meit.models import MeitModel

    if recipe.model.projector_norm and not recipe.train.init_from and base_loads_partitioned():
        raise ConfigError(
            "model.projector_norm=true measures the LLM's hidden-state scale with a forward pass while the model is "
            "built, but under DeepSpeed ZeRO-3 the base is loaded already partitioned (deepspeed.zero.Init), so that "
            "forward cannot run: set model.projector_norm=false, train with ZeRO-2 or FSDP, or start from an "
            "artifact that has the projector (train.init_from=RUN/final)")
    torch.manual_seed(recipe.seed)
    if recipe.train.init_from:
        return model_from_artifact(recipe)
    fs, seconds = data_rate(recipe.data)
    return MeitModel.build(recipe.model, data_fs=fs, data_seconds=seconds, train_reports=lambda: train_reports(recipe))


def train_reports(recipe: Recipe) -> list[str]:
    """The reports of the rows this recipe trains on (``data.train_split``, ``data.max_train_samples``): what a
    model that builds its vocabulary from the data (the encdec baseline) may see, and nothing of the other splits."""
    split = load_split(recipe.data.require_path(), recipe.data.train_split, recipe.data.max_train_samples)
    return [str(report) for report in split["report"]]


def model_from_artifact(recipe: Recipe) -> Any:
    """``train.init_from``'s artifact, with the recipe's load-time model keys applied.

    The artifact decides what the model is; a ``model.*`` key the recipe sets explicitly must either be
    one a reload may change (dtype, quantisation, …: applied) or agree with the artifact. Anything else
    was silently ignored before; now it is an error naming the keys.
    """
    from meit.models import MeitModel
    from meit.models.model_artifact import LOAD_OVERRIDES

    explicit = recipe.model.model_fields_set
    model = MeitModel.from_pretrained(
        recipe.train.init_from, **{key: getattr(recipe.model, key) for key in explicit & LOAD_OVERRIDES})
    differing = {key: (getattr(recipe.model, key), getattr(model.cfg, key)) for key in sorted(explicit - LOAD_OVERRIDES)
                 if getattr(recipe.model, key) != getattr(model.cfg, key) and getattr(recipe.model, key) != "auto"}
    if differing:
        listed = "; ".join(f"model.{key}={mine!r} (artifact: {theirs!r})" for key, (mine, theirs) in differing.items())
        raise ConfigError(f"train.init_from={recipe.train.init_from} decides the model, but the recipe sets {listed}. "
                          f"Remove these keys, or start from scratch without train.init_from. Keys a reload may "
                          f"change: {', '.join(f'model.{k}' for k in sorted(LOAD_OVERRIDES))}")
    return model


def check_data(recipe: Recipe, splits: list[str]) -> None:
    """Fail before the (slow) model build when the dataset or a needed split is missing."""
    path = recipe.data.require_path()
    dataset = load_prepared(path)
    for name in splits:
        get_split(dataset, name, path)


def build_split_dataset(
    recipe: Recipe,
    model: Any,
    split_name: str,
    max_samples: int | None = None,
    *,
    with_report: bool = True,
    fixed_instruction: str | None = None,
    data_path: str | None = None,
    perturb: Any = None,
    augment: bool = False,
) -> EcgReportDataset:
    """A split of ``data.path`` (or ``data_path``) as examples for ``model`` (``meit.data.dataset.report_dataset``);
    ``augment`` (the training split) applies an image encoder's training augmentations."""
    return report_dataset(
        recipe.data.require_path(data_path), split_name, tokenizer=model.tokenizer,
        prompt_format=PromptFormat.from_model(model, recipe.model.max_length), contract=model.encoder.contract,
        max_samples=max_samples, instruction_seed=recipe.data.instruction_seed,
        fixed_instruction=fixed_instruction, with_report=with_report, perturb=perturb, augment=augment,
        image_cache=recipe.data.image_cache if data_path is None else None,
    )
