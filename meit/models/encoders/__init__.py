"""ECG encoders: a registry of names → constructors taking an :class:`EncoderContract`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
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
from meit.models.encoders.ecgfounder import ecgfounder_net1d
from meit.models.encoders.merl import MERL_BUILDERS
from meit.models.encoders.resnet1d import ResNet1d, resnet1d_18, resnet1d_34, resnet1d_50, resnet1d_tiny
from meit.models.encoders.vit1d import ViT1d, vit1d_small, vit1d_tiny

ENCODERS: dict[str, Callable[..., ECGEncoder]] = {
    "resnet1d-18": resnet1d_18,
    "resnet1d-34": resnet1d_34,
    "resnet1d-50": resnet1d_50,
    "vit1d-tiny": vit1d_tiny,
    "vit1d-small": vit1d_small,
    "resnet1d-tiny": resnet1d_tiny,  # tests and smoke runs
    # public pretrained encoders, key-compatible with their checkpoints (`meit import-encoder`)
    **MERL_BUILDERS,
    "ecgfounder-net1d": ecgfounder_net1d,
}


def build_encoder(name: str, contract: EncoderContract, **kwargs) -> ECGEncoder:
    """Build encoder ``name`` for inputs described by ``contract``.

    The result remembers ``registry_name`` and ``builder_kwargs`` so checkpoints can be checked against it.
    """
    if name not in ENCODERS:
        close = difflib.get_close_matches(name, list(ENCODERS), n=2, cutoff=0.3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ModelError(f"unknown encoder '{name}' (known: {', '.join(ENCODERS)}){hint}")
    encoder = ENCODERS[name](contract, **kwargs)
    encoder.registry_name = name
    encoder.builder_kwargs = dict(kwargs)
    return encoder


def load_encoder_checkpoint(
    encoder: ECGEncoder, path: str | Path, *, encoder_name: str | None = None
) -> EncoderArtifactMeta | None:
    """Load pretrained encoder weights strictly; returns the artifact metadata when ``path`` is one.

    ``path`` is an encoder artifact folder (``encoder.json`` + ``encoder.safetensors``: the encoder's
    registry name — ``encoder_name`` or the one :func:`build_encoder` recorded — and contract must equal
    the artifact's), a folder holding ``encoder.safetensors`` (e.g. a trained meit model), or a bare
    ``.safetensors`` / torch file (read with ``weights_only=True``; a ``state_dict`` entry and an
    ``encoder.`` key prefix are unwrapped). Bare files carry no contract and are not checked.
    """
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
    "ENCODERS", "ECGEncoder", "EncoderArtifactMeta", "EncoderContract", "ResNet1d", "ViT1d", "build_encoder",
    "load_encoder_checkpoint", "read_encoder_metadata", "write_encoder_artifact",
]
