"""Word-level report decoders trained from scratch, cross-attending to the ECG encoder's time steps.

Both share one interface so that training and every decoding strategy treat them alike:

* ``memory(features)``: encoder time tokens ``[B, T', C]`` → what the decoder attends to ``[B, T', D]``;
* ``forward(tokens, memory)``: teacher forcing over right-padded ``[B, L]`` tokens → logits ``[B, L, V]``
  (causal: position ``i`` sees tokens ``≤ i``, so padding at the end is never read by real tokens);
* ``start(memory)`` / ``step(state, last)``: one token at a time for generation; the state is a dict of
  tensors with the batch first, so beam search reorders it with one ``index_select``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from meit.config import EncDecConfig

State = dict[str, torch.Tensor]


def sinusoidal(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The fixed sine/cosine position table ``[length, dim]`` (no length limit, nothing to learn)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device, dtype=torch.float32)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table.to(dtype)


class TransformerReportDecoder(nn.Module):
    """Pre-norm ``nn.TransformerDecoder``: masked self-attention over the report, cross-attention to the ECG."""

    kind = "transformer"

    def __init__(self, vocab_size: int, memory_dim: int, cfg: EncDecConfig, pad_id: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.d_model = d
        self.embed = nn.Embedding(vocab_size, d, padding_idx=pad_id)
        self.memory_in = nn.Sequential(nn.Linear(memory_dim, d), nn.LayerNorm(d))
        layer = nn.TransformerDecoderLayer(d, cfg.heads, cfg.ff_dim, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerDecoder(layer, cfg.layers, norm=nn.LayerNorm(d))
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(d, vocab_size)

    def memory(self, features: torch.Tensor) -> torch.Tensor:
        x = self.memory_in(features)
        return x + sinusoidal(x.shape[1], self.d_model, x.device, x.dtype)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        x = self.embed(tokens) * math.sqrt(self.d_model)
        x = self.drop(x + sinusoidal(length, self.d_model, x.device, x.dtype))
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=x.device, dtype=x.dtype)
        return self.head(self.layers(x, memory, tgt_mask=causal, tgt_is_causal=True))

    def start(self, memory: torch.Tensor) -> State:
        return {"memory": memory, "tokens": memory.new_zeros((memory.shape[0], 0), dtype=torch.long)}

    def step(self, state: State, last: torch.Tensor) -> tuple[torch.Tensor, State]:
        # no cache: the whole prefix again each step (reports are ≤ a few hundred words; kept simple and exact)
        tokens = torch.cat([state["tokens"], last[:, None]], dim=1)
        logits = self.forward(tokens, state["memory"])[:, -1]
        return logits, {"memory": state["memory"], "tokens": tokens}


class LstmReportDecoder(nn.Module):
    """A stacked LSTM over the report with Luong (general) attention over the ECG time steps.

    The initial state comes from the mean of the encoder's time steps; each output is combined with its
    attention context (``tanh(W [h; c])``) before the vocabulary projection.
    """

    kind = "lstm"

    def __init__(self, vocab_size: int, memory_dim: int, cfg: EncDecConfig, pad_id: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.d_model, self.num_layers = d, cfg.layers
        self.embed = nn.Embedding(vocab_size, d, padding_idx=pad_id)
        self.memory_in = nn.Sequential(nn.Linear(memory_dim, d), nn.LayerNorm(d))
        self.init_h = nn.Linear(d, d * cfg.layers)
        self.init_c = nn.Linear(d, d * cfg.layers)
        self.lstm = nn.LSTM(d, d, num_layers=cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.score = nn.Linear(d, d, bias=False)
        self.combine = nn.Linear(2 * d, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(d, vocab_size)

    def memory(self, features: torch.Tensor) -> torch.Tensor:
        return self.memory_in(features)

    def _initial(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = memory.mean(dim=1)
        shape = (memory.shape[0], self.num_layers, self.d_model)
        h = torch.tanh(self.init_h(mean)).view(shape).transpose(0, 1).contiguous()
        c = self.init_c(mean).view(shape).transpose(0, 1).contiguous()
        return h, c

    def _output(self, hidden: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(hidden) @ memory.transpose(1, 2), dim=-1)  # [B, L, T']
        context = weights @ memory
        return self.head(self.drop(torch.tanh(self.combine(torch.cat([hidden, context], dim=-1)))))

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.drop(self.embed(tokens)), self._initial(memory))
        return self._output(hidden, memory)

    def start(self, memory: torch.Tensor) -> State:
        h, c = self._initial(memory)
        return {"memory": memory, "h": h.transpose(0, 1), "c": c.transpose(0, 1)}  # batch first for reordering

    def step(self, state: State, last: torch.Tensor) -> tuple[torch.Tensor, State]:
        hc = (state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous())
        hidden, (h, c) = self.lstm(self.embed(last[:, None]), hc)
        logits = self._output(hidden, state["memory"])[:, -1]
        return logits, {"memory": state["memory"], "h": h.transpose(0, 1), "c": c.transpose(0, 1)}


DECODERS: dict[str, type[TransformerReportDecoder] | type[LstmReportDecoder]] = {
    "encdec-transformer": TransformerReportDecoder,
    "encdec-lstm": LstmReportDecoder,
}


def build_decoder(name: str, vocab_size: int, memory_dim: int, cfg: EncDecConfig,
                  pad_id: int) -> TransformerReportDecoder | LstmReportDecoder:
    """The decoder ``model.llm`` names (one of ``meit.config.ENCDEC_LLMS``)."""
    return DECODERS[name](vocab_size, memory_dim, cfg, pad_id)
