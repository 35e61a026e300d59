"""Projectors: encoder tokens ``[B, T, D_enc]`` → ``num_tokens`` LLM-width vectors ``[B, N, D_llm]``.

- ``linear``: one linear map; the encoder's time tokens are average-pooled to N first.
- ``mlp``: Linear → GELU → Linear (LLaVA-1.5 style), same pooling.
- ``resampler``: N learned queries cross-attend to all encoder tokens (Perceiver/Q-Former style).

Any of them can be wrapped in :class:`NormalisedProjector` (``model.projector_norm``): features are
standardised across the batch on the way in, and the output gets a fixed, LLM-matched scale. Measured
on the quickstart (docs/evaluation.md, grounding): raw pooled ResNet features of different ECGs have a
pairwise cosine of 0.98 (one shared offset), and a free output scale grows tenfold within a few steps.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from meit.errors import ModelError


def _pool_tokens(x: torch.Tensor, n: int) -> torch.Tensor:
    """Average-pool a token sequence [B, T, D] to n tokens (n = 1: global mean)."""
    if x.shape[1] == n:
        return x
    return F.adaptive_avg_pool1d(x.transpose(1, 2), n).transpose(1, 2)


class LinearProjector(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, num_tokens: int = 1):
        super().__init__()
        self.num_tokens = num_tokens
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(_pool_tokens(tokens, self.num_tokens))


class MLPProjector(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, num_tokens: int = 1, hidden_dim: int | None = None):
        super().__init__()
        self.num_tokens = num_tokens
        hidden = hidden_dim or out_dim
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(_pool_tokens(tokens, self.num_tokens))))


class ResamplerProjector(nn.Module):
    """A fixed number of learned queries cross-attending to the encoder tokens, then an MLP, then to D_llm."""

    def __init__(self, in_dim: int, out_dim: int, num_tokens: int = 1, width: int = 256, heads: int = 4,
                 depth: int = 1):
        super().__init__()
        self.num_tokens = num_tokens
        self.queries = nn.Parameter(torch.randn(num_tokens, width) * 0.02)
        self.kv_in = nn.Linear(in_dim, width)
        self.kv_norm = nn.LayerNorm(width)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(nn.ModuleDict({
                "q_norm": nn.LayerNorm(width),
                "attn": nn.MultiheadAttention(width, heads, batch_first=True),
                "ff_norm": nn.LayerNorm(width),
                "ff": nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)),
            }))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        kv = self.kv_norm(self.kv_in(tokens))
        q = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            attn, _ = layer["attn"](layer["q_norm"](q), kv, kv, need_weights=False)
            q = q + attn
            q = q + layer["ff"](layer["ff_norm"](q))
        return self.out(self.out_norm(q))


class FeatureStandardiser(nn.BatchNorm1d):
    """BatchNorm over the feature channels of ``[B, T, D]`` tokens: removes what all ECGs share.

    A training batch of a single vector has no batch statistics: it is normalised with the running ones.
    """

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = tokens.transpose(1, 2)  # [B, D, T]
        if self.training and x.shape[0] * x.shape[2] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                                self.eps).transpose(1, 2)
        return super().forward(x).transpose(1, 2)


class NormalisedProjector(nn.Module):
    """``inner`` between a feature standardiser and an output LayerNorm whose gain starts at ``output_rms``.

    ``output_rms`` is the per-element RMS of the hidden states the ECG tokens stand in for (measured on the
    backbone at build time), so the ECG neither drowns the text nor vanishes next to it.
    """

    def __init__(self, inner: nn.Module, in_dim: int, out_dim: int, output_rms: float = 1.0):
        super().__init__()
        self.num_tokens = inner.num_tokens
        self.inner = inner
        self.in_norm = FeatureStandardiser(in_dim)
        self.out_norm = nn.LayerNorm(out_dim)
        nn.init.constant_(self.out_norm.weight, float(output_rms))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out_norm(self.inner(self.in_norm(tokens)))


PROJECTORS: dict[str, Callable[..., nn.Module]] = {
    "linear": LinearProjector,
    "mlp": MLPProjector,
    "resampler": ResamplerProjector,
}


def encoder_pools(num_ecg_tokens: int, projector: str) -> bool:
    """Whether the projector reads one pooled encoder vector (one ECG token; the resampler always attends over the
    time tokens) or the time tokens. The LLM model's findings head reads the same features."""
    return num_ecg_tokens == 1 and projector != "resampler"


def build_projector(name: str, in_dim: int, out_dim: int, num_tokens: int = 1, *, normalised: bool = False,
                    output_rms: float = 1.0, **kwargs) -> nn.Module:
    """Projector ``name``; ``normalised`` wraps it in :class:`NormalisedProjector` (output gain ``output_rms``)."""
    if name not in PROJECTORS:
        close = difflib.get_close_matches(name, list(PROJECTORS), n=1, cutoff=0.3)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ModelError(f"unknown projector '{name}' (known: {', '.join(PROJECTORS)}){hint}")
    projector = PROJECTORS[name](in_dim, out_dim, num_tokens, **kwargs)
    return NormalisedProjector(projector, in_dim, out_dim, output_rms) if normalised else projector
