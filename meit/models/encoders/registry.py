"""The encoder registry: names → constructors taking an :class:`EncoderContract`.

Its own module so that the artifact writer can check names against it without importing the package.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from meit.data.contract import EncoderContract
from meit.errors import ModelError
from meit.models.encoders.base import ECGEncoder
from meit.models.encoders.ecgfounder import ecgfounder_net1d
from meit.models.encoders.image import IMAGE_BUILDERS
from meit.models.encoders.merl import MERL_BUILDERS
from meit.models.encoders.resnet1d import resnet1d_18, resnet1d_34, resnet1d_50, resnet1d_tiny
from meit.models.encoders.vit1d import vit1d_small, vit1d_tiny

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
    # ECGs as images (paper layouts or GAF/RP/MTF; model.image_mode): transformers' ConvNeXt, ViT, ResNet
    **IMAGE_BUILDERS,
}


def build_encoder(name: str, contract: EncoderContract, **kwargs) -> ECGEncoder:
    """Build encoder ``name`` for inputs described by ``contract``.

    The result remembers ``registry_name`` and ``builder_kwargs`` so checkpoints can be checked against it.
    """
    if name not in ENCODERS:
        close = difflib.get_close_matches(name, list(ENCODERS), n=2, cutoff=0.3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ModelError(f"unknown encoder '{name}' (known: {', '.join(ENCODERS)}){hint}")
    if contract.is_image and name not in IMAGE_BUILDERS:
        raise ModelError(f"encoder '{name}' reads the signal, but the contract asks for a {contract.image_mode} image: "
                         f"set model.image_mode=none, or choose an image encoder ({', '.join(IMAGE_BUILDERS)})")
    encoder = ENCODERS[name](contract, **kwargs)
    encoder.registry_name = name
    encoder.builder_kwargs = dict(kwargs)
    return encoder
