"""ECG encoders: the registry (`registry.py`), artifacts (`artifact.py`) and strict checkpoint loading."""

from __future__ import annotations

from pathlib import Path

from meit.data.contract import EncoderContract
from meit.errors import ModelError
from meit.models.encoders.artifact import (
    EncoderArtifactMeta,
    check_artifact_matches,
    read_encoder_metadata,
    read_state_file,
    state_fit_problems,
    write_encoder_artifact,
)
from meit.models.encoders.base import ECGEncoder
from meit.models.encoders.image import ImageEncoder, is_transformers_source, load_pretrained_vision
from meit.models.encoders.registry import ENCODERS, build_encoder
from meit.models.encoders.resnet1d import ResNet1d
from meit.models.encoders.vit1d import ViT1d


def load_encoder_checkpoint(
    encoder: ECGEncoder, path: str | Path, *, encoder_name: str | None = None
) -> EncoderArtifactMeta | None:
    """Load pretrained encoder weights strictly; returns the artifact metadata when ``path`` is one.

    ``path`` is an encoder artifact folder (``encoder.json`` + ``encoder.safetensors``: the encoder's
    registry name — ``encoder_name`` or the one :func:`build_encoder` recorded — and contract must equal
    the artifact's), a folder holding ``encoder.safetensors`` (e.g. a trained meit model), or a bare
    ``.safetensors`` / torch file (read with ``weights_only=True``; a ``state_dict`` entry and an
    ``encoder.`` key prefix are unwrapped). Bare files carry no contract and are not checked. An image encoder
    also takes a transformers checkpoint of its family: a folder with ``config.json``, or a hub id (read from the
    local cache; downloaded only when HF_HUB_OFFLINE is unset).
    """
    if isinstance(encoder, ImageEncoder) and is_transformers_source(path):
        load_pretrained_vision(encoder, path)
        return None
    file = Path(path).expanduser()
    meta = read_encoder_metadata(file)
    if meta is not None:
        check_artifact_matches(meta, encoder_name or getattr(encoder, "registry_name", None), encoder.contract)
    if file.is_dir():
        file = file / "encoder.safetensors"
    if not file.is_file():
        raise ModelError(f"encoder checkpoint not found: {file}")
    state = read_state_file(file)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"encoder checkpoint {file} holds a {type(state).__name__}, not a state dict")
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    problem = state_fit_problems(encoder, state, file)
    if problem:
        raise ModelError(problem)
    encoder.load_state_dict(state, strict=True)
    return meta


__all__ = [
    "ENCODERS", "ECGEncoder", "EncoderArtifactMeta", "EncoderContract", "ImageEncoder", "ResNet1d", "ViT1d",
    "build_encoder",
    "load_encoder_checkpoint", "read_encoder_metadata", "write_encoder_artifact",
]
