"""Image encoders (ConvNeXt, ViT, ResNet) for ECGs drawn as images, built from transformers' own vision models.

They are pure torch (timm needs torchvision, which does not import beside the CPU torch build here) and start
from random initialisation; pretrained weights come from ``model.encoder_checkpoint`` (an encoder artifact, a
``.safetensors`` file, or a transformers folder / hub id of the same architecture, see
:func:`load_pretrained_vision`). Like the signal encoders they return a sequence of feature tokens — the last
stage's feature map flattened row by row (ConvNeXt, ResNet) or the patch tokens (ViT) — and one pooled vector,
so every projector and both fusions work unchanged. The input is the contract's image ``[B, C, H, W]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from meit.data.contract import EncoderContract
from meit.errors import DataError, ModelError, OfflineError
from meit.models.encoders.base import ECGEncoder, check_values
from meit.paths import hub_offline

#: transformers' model_type of each family (what a transformers folder's config.json must say)
FAMILY_MODEL_TYPES = {"convnext": "convnext", "vit": "vit", "resnet": "resnet"}


@dataclass(frozen=True)
class VisionArch:
    """One registry entry: a family and the config fields that fix its architecture."""

    family: str
    config: dict[str, Any] = field(default_factory=dict)


ARCHS: dict[str, VisionArch] = {
    # ConvNeXt (Liu et al. 2022): the sizes of facebook/convnext-{tiny,small}-224
    "convnext-tiny-image": VisionArch("convnext", {"depths": [3, 3, 9, 3], "hidden_sizes": [96, 192, 384, 768]}),
    "convnext-small-image": VisionArch("convnext", {"depths": [3, 3, 27, 3], "hidden_sizes": [96, 192, 384, 768]}),
    # ConvNeXt-atto (timm's smallest ConvNeXt, 3.4M parameters): the image quickstart's encoder on a CPU
    "convnext-atto-image": VisionArch("convnext", {"depths": [2, 2, 6, 2], "hidden_sizes": [40, 80, 160, 320]}),
    # ViT (Dosovitskiy et al. 2021), 16-px patches: the sizes of DeiT-small / google/vit-base-patch16-224
    "vit-small-image": VisionArch("vit", {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
                                          "intermediate_size": 1536, "patch_size": 16}),
    "vit-base-image": VisionArch("vit", {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                                         "intermediate_size": 3072, "patch_size": 16}),
    # ResNet (He et al. 2016): the sizes of microsoft/resnet-18 / -50
    "resnet18-image": VisionArch("resnet", {"layer_type": "basic", "depths": [2, 2, 2, 2], "embedding_size": 64,
                                            "hidden_sizes": [64, 128, 256, 512]}),
    "resnet50-image": VisionArch("resnet", {"layer_type": "bottleneck", "depths": [3, 4, 6, 3], "embedding_size": 64,
                                            "hidden_sizes": [256, 512, 1024, 2048]}),
    # toy sizes for tests and smoke runs
    "convnext-toy-image": VisionArch("convnext", {"depths": [1, 1], "hidden_sizes": [16, 32]}),
    "vit-toy-image": VisionArch("vit", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                        "intermediate_size": 64, "patch_size": 16}),
    "resnet-toy-image": VisionArch("resnet", {"layer_type": "basic", "depths": [1, 1], "embedding_size": 16,
                                              "hidden_sizes": [16, 32]}),
}


def _vision_config(arch: VisionArch, contract: EncoderContract, overrides: dict[str, Any]) -> Any:
    from transformers import ConvNextConfig, ResNetConfig, ViTConfig

    channels, height, width = contract.input_shape
    values = {**arch.config, **overrides, "num_channels": channels}
    if arch.family == "convnext":
        values.setdefault("num_stages", len(values["depths"]))
        return ConvNextConfig(**values)
    if arch.family == "resnet":
        return ResNetConfig(**values)
    patch = values["patch_size"]
    if height % patch or width % patch:
        raise ModelError(f"a ViT with {patch}-px patches needs an image size divisible by {patch}; the contract's "
                         f"image is {height}×{width} (set model.image_size)")
    return ViTConfig(**values, image_size=[height, width])


class ImageEncoder(ECGEncoder):
    """A transformers vision backbone over the contract's image: ``[B, C, H, W]`` → tokens ``[B, N, D]``."""

    def __init__(self, contract: EncoderContract, arch: VisionArch, **config_overrides: Any) -> None:
        super().__init__()
        if not contract.is_image:
            raise ModelError(
                f"an image encoder reads images: set model.image_mode (paper-3x4, paper-6x2, paper-12x1, gaf, rp "
                f"or mtf); the contract says the encoder reads the signal ({contract.describe()})")
        from transformers import ConvNextModel, ResNetModel, ViTModel

        self.contract = contract
        self.family = arch.family
        self.config = _vision_config(arch, contract, config_overrides)
        if arch.family == "convnext":
            self.backbone = ConvNextModel(self.config)
            self.out_dim = int(self.config.hidden_sizes[-1])
        elif arch.family == "resnet":
            self.backbone = ResNetModel(self.config)
            self.out_dim = int(self.config.hidden_sizes[-1])
        else:
            self.backbone = ViTModel(self.config, add_pooling_layer=False)
            self.out_dim = int(self.config.hidden_size)

    def check_input(self, ecg: torch.Tensor) -> None:
        """Raise :class:`DataError` naming expected vs got when the image batch breaks the contract."""
        c = self.contract
        expected = [*c.input_shape]
        if not isinstance(ecg, torch.Tensor) or ecg.dim() != 4 or list(ecg.shape[1:]) != expected:
            got = list(ecg.shape) if isinstance(ecg, torch.Tensor) else type(ecg).__name__
            shape = ", ".join(map(str, expected))
            raise DataError(
                f"ECG batch does not match the image encoder's input contract: expected images [B, {shape}] "
                f"({c.describe()}); got {got}. The data pipeline renders them from the signal "
                "(contract.load_transform): build datasets through it."
            )
        check_values(ecg, "image batch")

    def _features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, N, D]`` and the pooled vector ``[B, D]`` in one pass."""
        out = self.backbone(pixel_values=images)
        if self.family == "vit":
            hidden = out.last_hidden_state  # LayerNorm'd; position 0 is the CLS token
            return hidden[:, 1:], hidden[:, 0]
        grid = out.last_hidden_state  # [B, C, h, w]
        tokens = grid.flatten(2).transpose(1, 2)  # row by row
        if self.family == "convnext":  # ConvNeXt's final LayerNorm, on the tokens as on its pooled output
            return self.backbone.layernorm(tokens), out.pooler_output
        return tokens, tokens.mean(dim=1)

    def forward(self, ecg: torch.Tensor, pooled: bool = False) -> torch.Tensor:
        tokens, vector = self._features(ecg)
        return vector[:, None] if pooled else tokens

    def encode(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._features(ecg)

    # ------------------------------------------------------------------------------------------
    # pretrained weights from a transformers checkpoint

    def load_transformers_state(self, state: dict[str, torch.Tensor], where: str) -> list[str]:
        """Load a transformers checkpoint's tensors (``ConvNextModel`` or ``…ForImageClassification`` keys) strictly
        into the backbone; returns the keys dropped on purpose (classifier heads, an unused ViT pooler)."""
        from meit.models.encoders.artifact import state_fit_problems

        prefix = {"convnext": "convnext.", "vit": "vit.", "resnet": "resnet."}[self.family]
        own = self.backbone.state_dict()
        kept, dropped = {}, []
        for key, value in state.items():
            bare = key[len(prefix):] if key.startswith(prefix) else key
            if bare in own:
                kept[bare] = value
            elif key.startswith(("classifier.", "pooler.")) or bare.startswith("pooler."):
                dropped.append(key)
            else:
                kept[bare] = value  # reported as unexpected below
        problem = state_fit_problems(self.backbone, kept, where, role=f"{self.family} image encoder")
        if problem:
            raise ModelError(problem + self._size_hint())
        self.backbone.load_state_dict(kept, strict=True)
        return dropped

    def _size_hint(self) -> str:
        if self.family == "vit":
            return (". A ViT's position embeddings fix its image size and patch grid: set model.image_size to the "
                    "size the weights were trained at (e.g. 224) and the matching encoder size")
        return ". Pick the registry name of the same size (e.g. convnext-tiny-image for convnext-tiny weights)"


def _builder(name: str) -> Callable[..., ImageEncoder]:
    arch = ARCHS[name]

    def build(contract: EncoderContract, **overrides: Any) -> ImageEncoder:
        return ImageEncoder(contract, arch, **overrides)

    build.__name__ = name.replace("-", "_")
    build.__doc__ = f"``{name}``: transformers {arch.family} with {arch.config}."
    return build


IMAGE_BUILDERS: dict[str, Callable[..., ImageEncoder]] = {name: _builder(name) for name in ARCHS}


# ----------------------------------------------------------------------------------------------
# transformers folders and hub ids as weight sources

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: weight files of a transformers folder, in the order they are looked for (never a pickle beyond weights_only)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def is_transformers_source(path: str | Path) -> bool:
    """A transformers folder (``config.json``, no ``encoder.json``) or, when no such path exists, a hub id."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        return (folder / "config.json").is_file() and not (folder / "encoder.json").is_file()
    return not folder.exists() and bool(_HUB_ID.match(str(path))) and not str(path).startswith((".", "/", "~"))


def _resolve_folder(source: str | Path) -> Path:
    """The local folder of a transformers checkpoint: the folder itself, or a hub id's snapshot.

    A hub id is read from the local Hugging Face cache; it is downloaded only when HF_HUB_OFFLINE is unset.
    """
    folder = Path(source).expanduser()
    if folder.is_dir():
        return folder
    hub_id = str(source)
    from meit.models.backbones import cached_hub_folder

    cached = cached_hub_folder(hub_id)
    if cached is not None and any((cached / name).is_file() for name in _WEIGHT_FILES):
        return cached
    if hub_offline():
        raise OfflineError(
            f"image encoder weights '{hub_id}' are a hub id, but HF_HUB_OFFLINE is set and they are not in the local "
            f"cache; download them where there is network (huggingface-cli download {hub_id}) and point "
            "model.encoder_checkpoint at the folder"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return Path(snapshot_download(hub_id, allow_patterns=["config.json", "*.safetensors"]))
    except (OSError, HfHubHTTPError) as err:
        raise OfflineError(f"image encoder weights '{hub_id}': cannot fetch them from the hub ({err})") from err


def load_pretrained_vision(encoder: ImageEncoder, source: str | Path) -> dict[str, Any]:
    """Load a transformers checkpoint of ``encoder``'s family (folder or hub id) strictly; what was read.

    The folder's ``config.json`` must name the same family; its weights (``model.safetensors``, or
    ``pytorch_model.bin`` read with ``weights_only=True``) must fit the registry architecture exactly, classifier
    heads aside. Returns ``{"folder", "file", "dropped"}``.
    """
    from meit.models.encoders.artifact import read_state_file

    folder = _resolve_folder(source)
    config_file = folder / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"{config_file}: not a readable transformers config ({err})") from err
    model_type = config.get("model_type")
    if model_type != FAMILY_MODEL_TYPES[encoder.family]:
        raise ModelError(f"{config_file} is a '{model_type}' checkpoint; this encoder is a {encoder.family} "
                         f"(choose the image encoder of that family, e.g. {model_type}-…-image)")
    weights = next((folder / name for name in _WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise ModelError(f"{folder} has no {' or '.join(_WEIGHT_FILES)}")
    state = read_state_file(weights)
    if not isinstance(state, dict):
        raise ModelError(f"{weights} holds a {type(state).__name__}, not a state dict")
    dropped = encoder.load_transformers_state(state, str(weights))
    return {"folder": str(folder), "file": weights.name, "dropped": dropped}
