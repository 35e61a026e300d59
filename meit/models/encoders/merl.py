"""MERL's ECG encoders (Liu et al., ICML 2024), laid out so its published checkpoints load key for key.

Facts taken from github.com/cheliu-computation/MERL-ICML2024 at 38799b7 (``utils/resnet1d.py``,
``utils/vit1d.py``, ``utils/utils_builder.py``, ``pretrain/preprocess.ipynb``,
``finetune/finetune_dataset.py``); the code here is our own.

* ResNet1d-18/34 (basic blocks) and -50/101 (bottlenecks): kernel-3 convolutions, a kernel-7 stride-2
  stem with no max-pool, stages of 64/128/256/512 channels (× 4 for bottlenecks), 1×1 projection
  shortcuts. 12 × 5000 samples become 313 time steps. Upstream also registers a 10-class
  ``linear`` head its encoder never calls; it is not part of this module (the importer drops it).
* ViT-tiny/small/middle/base: a bias-free Conv1d patch embedding (50 samples = 0.1 s at 500 Hz), a learned
  position embedding per patch (no CLS token), pre-norm blocks (64-wide heads, GELU MLP), and a
  final LayerNorm applied after averaging over patches.
* Input MERL was trained on: MIMIC-IV-ECG at 500 Hz, the first 5000 samples (10 s), in MIMIC's own
  lead order (I, II, III, aVR, aVF, aVL, V1–V6), min-max scaled to [0, 1] over the whole record.
  meit data is in canonical order (aVL before aVF), so these encoders swap leads 4 and 5 back
  inside ``forward`` (as MERL's own fine-tuning code does for PTB-XL).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from meit.data.contract import EncoderContract
from meit.errors import ModelError
from meit.models.encoders.base import ECGEncoder

#: the input the published MERL weights were trained on: 500 Hz × 10 s, no filtering, min-max scaled to
#: [0, 1] by the min and max of the whole record (``pretrain/preprocess.ipynb``:
#: ``(record - record.min()) / (record.max() - record.min())`` over all 12 leads)
MERL_CONTRACT = EncoderContract(leads=12, fs=500, seconds=10.0, normalisation="minmax_record")

#: canonical order → MIMIC-IV-ECG order (aVF and aVL swapped); the permutation is its own inverse
_MIMIC_ORDER = (0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11)


def _to_training_order(ecg: torch.Tensor, swap: bool) -> torch.Tensor:
    if swap and ecg.shape[1] == 12:
        return ecg[:, _MIMIC_ORDER]
    return ecg


# --------------------------------------------------------------------------------------------- ResNet


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv1d(cin, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = nn.Conv1d(width, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv1d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = nn.Conv1d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(width)
        self.conv3 = nn.Conv1d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm1d(cout)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Sequential:
    """An empty Sequential is the identity (and holds no keys), as upstream."""
    if stride == 1 and cin == cout:
        return nn.Sequential()
    return nn.Sequential(nn.Conv1d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm1d(cout))


#: depth → (block type, blocks per stage), as MERL's ResNet18/34/50/101 define them
MERL_RESNETS: dict[int, tuple[type[_Basic] | type[_Bottleneck], tuple[int, int, int, int]]] = {
    18: (_Basic, (2, 2, 2, 2)),
    34: (_Basic, (3, 4, 6, 3)),
    50: (_Bottleneck, (3, 4, 6, 3)),
    101: (_Bottleneck, (3, 4, 23, 3)),
}


class MerlResNet1d(ECGEncoder):
    """MERL's 1D ResNet. Tokens: the last stage's time steps ``[B, T/16, C]``; pooled: their mean."""

    def __init__(self, contract: EncoderContract, depth: int = 18, swap_avl_avf: bool = True):
        super().__init__()
        if depth not in MERL_RESNETS:
            raise ModelError(f"merl resnet: depth must be one of {sorted(MERL_RESNETS)}, got {depth}")
        block, counts = MERL_RESNETS[depth]
        self.contract = contract
        self.swap_avl_avf = swap_avl_avf
        self.conv1 = nn.Conv1d(contract.leads, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm1d(64)
        cin = 64
        for i, n in enumerate(counts):
            width = 64 * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.out_dim = cin

    def forward(self, ecg: torch.Tensor, pooled: bool = False) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(_to_training_order(ecg, self.swap_avl_avf))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        if pooled:
            return x.mean(dim=-1, keepdim=True).transpose(1, 2)
        return x.transpose(1, 2)


# --------------------------------------------------------------------------------------------- ViT


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int = 64, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        inner = heads * head_dim
        self.to_qkv = nn.Linear(dim, 3 * inner)
        # upstream skips the output projection only for one head as wide as the model (never in its variants)
        self.to_out = nn.Identity() if (heads == 1 and head_dim == dim) else nn.Sequential(nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (t.view(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        # indices 0 and 3 are the two Linear layers, as in the checkpoints
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.attn = _PreNorm(dim, _Attention(dim, heads, dropout=dropout))
        self.ff = _PreNorm(dim, _FeedForward(dim, mlp_dim, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.ff(x)


#: name → (width, depth, heads, mlp width), as MERL's vit_tiny/small/middle/base define them
MERL_VITS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (192, 12, 3, 768),
    "small": (384, 12, 6, 1536),
    "middle": (512, 12, 8, 2048),
    "base": (768, 12, 12, 3072),
}


class MerlViT1d(ECGEncoder):
    """MERL's 1D ViT. Tokens: every patch after the final LayerNorm; pooled: LayerNorm(mean of patches).

    ``patch_size`` defaults to 0.1 s of samples (MERL's 50 at 500 Hz). Weights load only at the trained
    input length, since the position embedding has one row per patch.
    """

    def __init__(self, contract: EncoderContract, size: str = "tiny", patch_size: int | None = None,
                 dropout: float = 0.0, swap_avl_avf: bool = True):
        super().__init__()
        if size not in MERL_VITS:
            raise ModelError(f"merl vit: size must be one of {sorted(MERL_VITS)}, got {size!r}")
        width, depth, heads, mlp_dim = MERL_VITS[size]
        patch = int(patch_size or max(1, round(contract.fs * 0.1)))
        if contract.samples < patch:
            raise ModelError(f"merl vit: input of {contract.samples} samples is shorter than one patch ({patch})")
        self.contract = contract
        self.swap_avl_avf = swap_avl_avf
        self.patch = patch
        self.depth = depth
        self.num_patches = contract.samples // patch
        self.to_patch_embedding = nn.Conv1d(contract.leads, width, patch, stride=patch, bias=False)
        self.pos_embedding = nn.Parameter(torch.randn(1, self.num_patches, width) * 0.02)
        for i in range(depth):
            self.add_module(f"block{i}", _Block(width, heads, mlp_dim, dropout))
        self.norm = nn.LayerNorm(width)
        self.out_dim = width

    def forward(self, ecg: torch.Tensor, pooled: bool = False) -> torch.Tensor:
        x = _to_training_order(ecg, self.swap_avl_avf)[..., : self.num_patches * self.patch]
        x = self.to_patch_embedding(x).transpose(1, 2) + self.pos_embedding
        for i in range(self.depth):
            x = getattr(self, f"block{i}")(x)
        if pooled:
            return self.norm(x.mean(dim=1, keepdim=True))
        return self.norm(x)


# --------------------------------------------------------------------------------------------- builders


def _resnet(depth: int):
    def build(contract: EncoderContract, **kw) -> MerlResNet1d:
        return MerlResNet1d(contract, depth=depth, **kw)

    build.__doc__ = f"MERL's ResNet1d-{depth} (published weights: 12 leads, 500 Hz, 10 s, min-max)."
    return build


def _vit(size: str):
    def build(contract: EncoderContract, **kw) -> MerlViT1d:
        return MerlViT1d(contract, size=size, **kw)

    build.__doc__ = f"MERL's ViT-{size} (published weights: 12 leads, 500 Hz, 10 s, min-max)."
    return build


MERL_BUILDERS = {
    **{f"merl-resnet1d-{d}": _resnet(d) for d in MERL_RESNETS},
    **{f"merl-vit1d-{s}": _vit(s) for s in MERL_VITS},
}
