"""Contrastive ECG–report pretraining of ECG encoders (``meit pretrain``).

Names are imported lazily so reading a recipe (``meit.pretrain.config``) does not load torch models.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "PretrainRecipe": "meit.pretrain.config",
    "EcgTextModel": "meit.pretrain.model",
    "PretrainResult": "meit.pretrain.engine",
    "pretrain": "meit.pretrain.engine",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'meit.pretrain' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
