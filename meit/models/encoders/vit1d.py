"""A 1D vision-transformer-style encoder: non-overlapping time patches of all 12 leads → transformer.

Patches last ``patch_seconds`` (default 0.2 s); a learned position embedding per patch and a CLS
token. Output: patch tokens ``[B, P, D]`` or the CLS vector ``[B, 1, D]``.
"""

from __future__ import annotations

import torch
from torch import nn

from meit.data.contract import EncoderContract
from meit.errors import ModelError
from meit.models.encoders.base import ECGEncoder


class ViT1d(ECGEncoder):
    def __init__(
        self,
        contract: EncoderContract,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        patch_seconds: float = 0.2,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.contract = contract
        patch = max(1, round(contract.fs * patch_seconds))
        if contract.samples < patch:
            raise ModelError(f"vit1d: input of {contract.samples} samples is shorter than one patch ({patch})")
        self.patch = patch
        self.num_patches = contract.samples // patch
        self.patch_embed = nn.Conv1d(contract.leads, dim, kernel_size=patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, self.num_patches + 1, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout=dropout, activation="gelu", batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)

    def _all_tokens(self, ecg: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(ecg[..., : self.num_patches * self.patch]).transpose(1, 2)  # [B, P, D]
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.norm(self.blocks(x))

    def forward(self, ecg: torch.Tensor, pooled: bool = False) -> torch.Tensor:
        x = self._all_tokens(ecg)
        return x[:, :1] if pooled else x[:, 1:]

    def encode(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._all_tokens(ecg)
        return x[:, 1:], x[:, 0]


def vit1d_tiny(contract: EncoderContract, **kw) -> ViT1d:
    return ViT1d(contract, dim=192, depth=6, heads=3, **kw)


def vit1d_small(contract: EncoderContract, **kw) -> ViT1d:
    return ViT1d(contract, dim=384, depth=8, heads=6, **kw)
