"""What ``GET /v1/model`` says about the served artifact: its model card, or the facts its metadata holds.

The card (``model_card.json``, written into every ``final/`` folder by training, pretraining and export) is
returned as it is. An artifact without one (older, or hand-assembled) still answers, from
``meit_model.json``: serving must never fail because a card is missing or damaged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CARD_FILE = "model_card.json"  # the name meit.models.card writes
META_FILE = "meit_model.json"
INTENDED_USE = "Research only; not a medical device."


def _read_json(file: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        log.warning("%s is not readable JSON (%s); /v1/model falls back to the artifact's metadata", file, err)
        return None
    return data if isinstance(data, dict) else None


def facts_from_metadata(checkpoint: Path) -> dict[str, Any]:
    """The card's core facts as far as ``meit_model.json`` tells them (backbone, encoder, fusion, LoRA)."""
    meta = _read_json(checkpoint / META_FILE) or {}
    cfg = meta.get("model_config", {}) if isinstance(meta.get("model_config"), dict) else {}
    backbone = meta.get("backbone", {}) if isinstance(meta.get("backbone"), dict) else {}
    return {
        "backbone": {k: backbone.get(k) for k in ("name", "family", "source", "licence", "license", "template")
                     if backbone.get(k) is not None},
        "encoder": {"name": cfg.get("encoder"), "contract": meta.get("encoder_contract"),
                    "checkpoint": cfg.get("encoder_checkpoint")},
        "fusion": {"mode": cfg.get("fusion"), "projector": cfg.get("projector"),
                   "num_ecg_tokens": meta.get("num_ecg_tokens")},
        "lora": {"state": meta.get("lora"), **(cfg.get("lora") or {})},
        "max_length": cfg.get("max_length"),
        "finding_labels": meta.get("finding_labels"),
        "meit_version": meta.get("meit_version"),
        "versions": meta.get("versions"),
        "intended_use": INTENDED_USE,
    }


def describe_model(checkpoint: Path) -> dict[str, Any]:
    """``{"source": "model_card.json" | "meit_model.json", "model_card": {...}}`` for the artifact folder."""
    card = _read_json(checkpoint / CARD_FILE)
    if card is not None:
        return {"source": CARD_FILE, "model_card": card}
    return {"source": META_FILE, "model_card": facts_from_metadata(checkpoint)}
