"""Contrastive and reconstruction objectives, with negatives gathered from every process.

Gathering: every process computes the loss over the whole global batch. The gather's backward sums
the gradients every process sends for this process's rows; the data-parallel wrapper then averages
over processes, so each parameter gets exactly the gradient of the global-batch loss (no 1/N error).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, local: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.contiguous())
        ctx.rank, ctx.rows = dist.get_rank(), local.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)  # gloo has no reduce_scatter; all_reduce works on every backend
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_rows(local: torch.Tensor, *, with_grad: bool = True) -> torch.Tensor:
    """Concatenate every process's ``local`` along dim 0 (same row count on each); identity on 1 process."""
    if _world() == 1:
        return local
    if with_grad and local.requires_grad:
        return _GatherWithGrad.apply(local)
    parts = [torch.empty_like(local) for _ in range(_world())]
    dist.all_gather(parts, local.contiguous())
    return torch.cat(parts)


def info_nce(ecg: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
             keys: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over normalised embeddings ``[N, D]``.

    With ``keys`` (one id per report wording), rows whose reports are identical are all positives:
    the target is spread evenly over them instead of calling a word-for-word identical report a negative.
    """
    logits = logit_scale * ecg @ text.t()
    if keys is None:
        target = torch.arange(len(ecg), device=ecg.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
    same = (keys[:, None] == keys[None, :]).to(logits.dtype)
    target = same / same.sum(dim=1, keepdim=True)
    ecg_to_text = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    text_to_ecg = -(target * F.log_softmax(logits.t(), dim=1)).sum(1).mean()
    return (ecg_to_text + text_to_ecg) / 2


def span_mask(batch: int, leads: int, samples: int, ratio: float, span: int,
              generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """A boolean ``[B, 1, T]`` mask of random time spans (all leads at once) covering about ``ratio`` of T."""
    span = max(1, min(span, samples))
    count = max(1, round(ratio * samples / span))
    starts = torch.randint(0, samples - span + 1, (batch, count), generator=generator)
    positions = (starts[..., None] + torch.arange(span)).reshape(batch, -1)
    mask = torch.zeros(batch, samples, dtype=torch.bool)
    mask.scatter_(1, positions, True)
    return mask[:, None, :].to(device)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked samples only (what the encoder could not see)."""
    full = mask.expand_as(target)
    return ((prediction - target) ** 2)[full].mean()
