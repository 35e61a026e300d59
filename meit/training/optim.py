"""Optimizer parameter groups (separate learning rates per part) and the LR schedule."""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import get_scheduler

from meit.config import TrainConfig
from meit.errors import ConfigError


def build_optimizer(groups: dict[str, list[torch.nn.Parameter]], cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable groups; encoder and projector may have their own learning rates."""
    lr_for = {"encoder": cfg.lr_encoder or cfg.lr, "finding_head": cfg.lr_encoder or cfg.lr,
              "projector": cfg.lr_projector or cfg.lr}
    param_groups: list[dict[str, Any]] = []
    for name, params in groups.items():
        params = [p for p in params if p.requires_grad]
        if params:
            param_groups.append(
                {"params": params, "lr": lr_for.get(name, cfg.lr), "weight_decay": cfg.weight_decay, "name": name}
            )
    if not param_groups:
        raise ConfigError(
            f"nothing to train for train.stage={cfg.stage} (train_encoder={cfg.train_encoder}): "
            "every parameter is frozen"
        )
    return torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def total_optimizer_steps(cfg: TrainConfig, batches_per_epoch: int) -> int:
    """``train.max_steps`` when set, else epochs × optimizer steps per epoch."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    return max(1, math.ceil(cfg.epochs * per_epoch))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> Any:
    warmup = round(cfg.warmup_ratio * total_steps)
    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[cfg.scheduler]
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=max(total_steps, 1))
