"""ECG encoders: a registry of names → constructors taking an :class:`EncoderContract`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

import torch

from meit.errors import ModelError
from meit.models.encoders.base import ECGEncoder, EncoderContract
from meit.models.encoders.resnet1d import ResNet1d, resnet1d_18, resnet1d_34, resnet1d_50, resnet1d_tiny
from meit.models.encoders.vit1d import ViT1d, vit1d_small, vit1d_tiny

ENCODERS: dict[str, Callable[..., ECGEncoder]] = {
    "resnet1d-18": resnet1d_18,
    "resnet1d-34": resnet1d_34,
    "resnet1d-50": resnet1d_50,
    "vit1d-tiny": vit1d_tiny,
    "vit1d-small": vit1d_small,
    "resnet1d-tiny": resnet1d_tiny,  # tests and smoke runs
}


def build_encoder(name: str, contract: EncoderContract, **kwargs) -> ECGEncoder:
    """Build encoder ``name`` for inputs described by ``contract``."""
    if name not in ENCODERS:
        close = difflib.get_close_matches(name, list(ENCODERS), n=2, cutoff=0.3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ModelError(f"unknown encoder '{name}' (known: {', '.join(ENCODERS)}){hint}")
    return ENCODERS[name](contract, **kwargs)


def load_encoder_checkpoint(encoder: ECGEncoder, path: str | Path) -> None:
    """Load pretrained encoder weights (safetensors, or a torch file read with ``weights_only=True``).

    Keys may carry an ``encoder.`` prefix (as in a meit artifact's full state dict).
    """
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / "encoder.safetensors"
    if not file.is_file():
        raise ModelError(f"encoder checkpoint not found: {file}")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(file))
    else:
        state = torch.load(str(file), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"encoder checkpoint {file} does not fit {type(encoder).__name__}: "
            f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}"
        )


__all__ = [
    "ENCODERS", "ECGEncoder", "EncoderContract", "ResNet1d", "ViT1d", "build_encoder", "load_encoder_checkpoint",
]
