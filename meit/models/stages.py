"""What each training stage trains: the stage policy over the model's parts.

``encoder`` trains the ECG encoder through its findings head (no LLM), ``align`` the projector, ``finetune``
LoRA and the projector (and the encoder unless frozen). Kept apart from the model's forward so the policy is
one readable table.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from meit.errors import ConfigError, ModelError


def parameter_parts(model: Any) -> dict[str, list[nn.Parameter]]:
    """The model's parameters by part (encoder, projector, LoRA, base LLM, findings head)."""
    lora, base = [], []
    for name, p in model.llm.named_parameters():
        (lora if "lora_" in name else base).append(p)
    parts = {
        "encoder": list(model.encoder.parameters()),
        "projector": list(model.projector.parameters()),
        "lora": lora,
        "base": base,
    }
    if model.finding_head is not None:
        parts["finding_head"] = list(model.finding_head.parameters())
    return parts

def set_stage(
    model: Any, stage: Literal["encoder", "align", "finetune"], train_encoder: bool = True,
    train_finding_head: bool | None = None,
) -> dict[str, list[nn.Parameter]]:
    """Set ``requires_grad`` for a training stage and return the trainable parameters by part.

    encoder: the encoder and its findings head only (no LLM). align: projector. finetune: LoRA +
    projector (+ encoder when ``train_encoder``). The findings head trains in the encoder stage, elsewhere
    only when ``train_finding_head`` (an auxiliary loss uses it: an unused trainable part stalls DDP).
    Without LoRA (full fine-tune) the whole base LLM ("base") instead of LoRA. Keys "encoder", "projector",
    "lora" are always present ("base" too for a full fine-tune, "finding_head" with a head); frozen parts map
    to empty lists.
    """
    if stage not in ("encoder", "align", "finetune"):
        raise ConfigError(f"train.stage must be 'encoder', 'align' or 'finetune', got {stage!r}")
    if stage == "encoder" and model.finding_head is None:
        raise ConfigError("train.stage=encoder trains the encoder through its findings head: "
                          "set model.finding_head=true")
    full_ft = model.lora_state == "none"
    finetune = stage == "finetune"
    train = {
        "encoder": stage == "encoder" or (finetune and train_encoder),
        "projector": stage != "encoder",
        "finding_head": stage == "encoder" if train_finding_head is None else train_finding_head,
        "lora": finetune and not full_ft,
        "base": finetune and full_ft,
    }
    parts = parameter_parts(model)
    for key, params in parts.items():
        for p in params:
            if train[key] and not p.is_floating_point():
                raise ModelError(f"cannot train {key} parameters of dtype {p.dtype} (quantised base)")
            p.requires_grad_(train[key])
    groups = {key: (params if train[key] else []) for key, params in parts.items()}
    if not full_ft:
        groups.pop("base")
    if model.training:
        model.train(True)  # re-apply the frozen-encoder eval mode
    return groups
