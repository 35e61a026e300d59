"""The two ways an ECG reaches the LLM, with no per-family modeling code.

``prefix`` (LLaVA-style): the projected ECG tokens replace the input embeddings at the positions
marked by ``ecg_mask``.

``kv`` (MEIT-style): one slot position at the start of the prompt is reserved. A forward pre-hook on
the top-most attention module of each chosen decoder layer replaces the slot's ``hidden_states`` by
the ECG embedding, so that layer's own (LoRA-adapted) q/k/v projections, k-norm, GQA, masks and KV
cache turn it into one extra key/value pair. The slot sits first (position 0: no RoPE rotation), or
right after BOS when the tokenizer starts every text with one (position 1; BOS stays where the
pretrained model expects it).
The slot is identified by a boolean mask, never by a token id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from meit.errors import ModelError
from meit.models.backbones import BackboneSpec


def find_attention_modules(model: nn.Module, pattern: str) -> list[nn.Module]:
    """Top-most modules whose class name matches ``pattern`` (one per decoder layer), in layer order."""
    regex = re.compile(pattern)
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not regex.search(type(module).__name__):
            continue
        if any(name.startswith(prev + ".") for prev, _ in found):
            continue
        found.append((name, module))
    return [m for _, m in found]


def splice_prefix(embeds: torch.Tensor, ecg_tokens: torch.Tensor, ecg_mask: torch.Tensor) -> torch.Tensor:
    """Put ``ecg_tokens[B, N, D]`` into ``embeds[B, L, D]`` at the N positions per row marked by ``ecg_mask``."""
    return embeds.masked_scatter(ecg_mask.unsqueeze(-1), ecg_tokens.to(embeds.dtype))


@dataclass
class _SlotState:
    embedding: torch.Tensor  # [B, 1, H]
    mask: torch.Tensor  # [B, L] bool
    active: bool = True
    prefill_only: bool = False
    grows: bool = False  # generation without a KV cache: every step re-reads the prompt plus new tokens


class KVSlotFusion:
    """Installs the kv-slot pre-hooks on a transformers causal LM (plain or peft-wrapped)."""

    def __init__(self, hf_model: nn.Module, spec: BackboneSpec, layers: list[int] | str = "all"):
        self.spec = spec
        modules = find_attention_modules(hf_model, spec.attention_pattern)
        n_layers = getattr(hf_model.config, "num_hidden_layers", None)
        if not modules or (n_layers is not None and len(modules) != n_layers):
            raise ModelError(
                f"kv fusion: found {len(modules)} modules matching attention_pattern "
                f"'{spec.attention_pattern}' in backbone '{spec.name}' but it has {n_layers} layers; "
                "fix the family entry in meit/models/backbones.py"
            )
        if layers == "all":
            chosen = list(range(len(modules)))
        else:
            n = len(modules)
            bad = [i for i in layers if not -n <= i < n]
            if bad or not layers:
                raise ModelError(f"model.kv_layers {bad or layers} out of range: backbone has {n} layers "
                                 f"(use indices 0…{n - 1}, negative from the end, or 'all')")
            chosen = sorted({i % n for i in layers})
        self.layers = chosen
        self.modules = modules
        self.state: _SlotState | None = None
        self._handles = [
            modules[i].register_forward_pre_hook(self._hook, with_kwargs=True) for i in chosen
        ]
        # after the first (prefill) call of generate, the slot is in the KV cache: disarm
        self._handles.append(hf_model.register_forward_hook(self._after_model_call))

    # -- state ------------------------------------------------------------------------------
    def set(self, embedding: torch.Tensor, mask: torch.Tensor, *, prefill_only: bool = False,
            grows: bool = False) -> None:
        """Arm the slot: for one call (``prefill_only``, then it lives in the KV cache), for every call of a
        cache-less generation whose sequences grow to the right (``grows``), or until cleared (training)."""
        self.state = _SlotState(embedding=embedding, mask=mask.bool(), prefill_only=prefill_only, grows=grows)

    def clear(self) -> None:
        self.state = None

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    # -- hooks ------------------------------------------------------------------------------
    def _after_model_call(self, module, args, output) -> None:
        if self.state is not None and self.state.prefill_only:
            self.state.active = False

    def _hook(self, module, args, kwargs):
        st = self.state
        if st is None or not st.active:
            return None
        by_keyword = self.spec.hidden_states_arg == "kwarg"
        hidden = kwargs.get("hidden_states") if by_keyword else (args[0] if args else None)
        if not isinstance(hidden, torch.Tensor):
            raise ModelError(
                f"kv fusion: {type(module).__name__} did not receive hidden_states as "
                f"{self.spec.hidden_states_arg} (family entry '{self.spec.family}' in meit/models/backbones.py)"
            )
        batch, length = hidden.shape[:2]
        emb, mask = st.embedding, st.mask
        if st.grows and mask.shape[1] < length:  # tokens generated so far sit right of the prompt
            mask = torch.nn.functional.pad(mask, (0, length - mask.shape[1]), value=False)
        if mask.shape[1] != length:
            raise ModelError(
                f"kv fusion: slot mask covers {mask.shape[1]} positions but the layer sees {length}; "
                "call the LLM through MeitModel.forward / generate"
            )
        if batch != emb.shape[0]:  # beams / several return sequences: generate repeats each row
            if batch % emb.shape[0]:
                raise ModelError(f"kv fusion: batch {batch} is not a multiple of {emb.shape[0]} ECGs")
            k = batch // emb.shape[0]
            emb, mask = emb.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
        new = torch.where(mask.unsqueeze(-1), emb.to(hidden.dtype), hidden)
        if self.spec.hidden_states_arg == "kwarg":
            kwargs = dict(kwargs)
            kwargs["hidden_states"] = new
            return args, kwargs
        return (new, *args[1:]), kwargs
