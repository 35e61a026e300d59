"""Models: ECG encoders, projectors, backbone registry, fusion (prefix | kv) and :class:`MeitModel`."""

from __future__ import annotations

from meit.models.backbones import (
    DEFAULT_BACKBONE,
    FAMILIES,
    PLAIN_TEMPLATE,
    PRESETS,
    TINY,
    BackboneSpec,
    registry_names,
    resolve_backbone,
)
from meit.models.encoders import ENCODERS, ECGEncoder, EncoderContract, build_encoder
from meit.models.model import MeitModel
from meit.models.projectors import PROJECTORS, build_projector

__all__ = [
    "DEFAULT_BACKBONE",
    "ENCODERS",
    "FAMILIES",
    "PLAIN_TEMPLATE",
    "PRESETS",
    "PROJECTORS",
    "TINY",
    "BackboneSpec",
    "ECGEncoder",
    "EncoderContract",
    "MeitModel",
    "build_encoder",
    "build_projector",
    "registry_names",
    "resolve_backbone",
]
