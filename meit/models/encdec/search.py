"""Decoding for the encdec decoders: greedy, sampling (temperature, top-p) and beam search.

The same settings as the LLM rows (``meit.inference.DecodingSettings``: ``max_new_tokens``,
``num_beams``, ``do_sample``, ``temperature``, ``top_p``) mean the same thing here. Beam search keeps
``num_beams`` hypotheses per ECG, scores finished ones by their summed log-probability divided by their
length (transformers' default length penalty 1.0) and stops an ECG once it has ``num_beams`` finished
ones and no open beam can still beat them.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from meit.models.encdec.decoders import State


def _banned(logits: torch.Tensor, banned: tuple[int, ...]) -> torch.Tensor:
    return logits.index_fill(-1, torch.tensor(banned, device=logits.device), float("-inf")) if banned else logits


class StepDecoder(Protocol):
    def start(self, memory: torch.Tensor) -> State: ...

    def step(self, state: State, last: torch.Tensor) -> tuple[torch.Tensor, State]: ...


def _reorder(state: State, index: torch.Tensor) -> State:
    return {key: value.index_select(0, index) for key, value in state.items()}


def _pad_rows(rows: list[list[int]], pad_id: int, device: torch.device) -> torch.Tensor:
    width = max(1, max((len(r) for r in rows), default=0))
    out = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        if row:
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long, device=device)
    return out


def _top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches ``top_p`` (always the most likely one)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # tokens after the nucleus is full
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def sample_or_greedy(decoder: StepDecoder, memory: torch.Tensor, *, bos_id: int, eos_id: int, pad_id: int,
                     max_new_tokens: int, do_sample: bool = False, temperature: float = 1.0,
                     top_p: float = 1.0, banned: tuple[int, ...] = ()) -> torch.Tensor:
    """One continuation per ECG: argmax, or a draw from the (temperature, top-p) distribution."""
    batch = memory.shape[0]
    state = decoder.start(memory)
    last = torch.full((batch,), bos_id, dtype=torch.long, device=memory.device)
    done = torch.zeros(batch, dtype=torch.bool, device=memory.device)
    out: list[torch.Tensor] = []
    for _ in range(max_new_tokens):
        logits, state = decoder.step(state, last)
        logits = _banned(logits, banned)
        if do_sample:
            probs = _top_p_filter(logits.float() / temperature, top_p).softmax(dim=-1)
            token = torch.multinomial(probs, 1)[:, 0]
        else:
            token = logits.argmax(dim=-1)
        token = token.masked_fill(done, pad_id)
        out.append(token)
        done |= token == eos_id
        last = token
        if bool(done.all()):
            break
    if not out:
        return torch.full((batch, 0), pad_id, dtype=torch.long, device=memory.device)
    return torch.stack(out, dim=1)


def beam_search(decoder: StepDecoder, memory: torch.Tensor, *, bos_id: int, eos_id: int, pad_id: int,
                max_new_tokens: int, num_beams: int, banned: tuple[int, ...] = ()) -> torch.Tensor:
    """The best of ``num_beams`` hypotheses per ECG (length-normalised log-probability)."""
    batch, device = memory.shape[0], memory.device
    k = num_beams
    state = decoder.start(memory.repeat_interleave(k, dim=0))
    scores = torch.zeros(batch, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start equal: keep one until the first step fans out
    sequences: list[list[int]] = [[] for _ in range(batch * k)]
    last = torch.full((batch * k,), bos_id, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    open_batch = [True] * batch
    for t in range(max_new_tokens):
        logits, state = decoder.step(state, last)
        logp = torch.log_softmax(_banned(logits.float(), banned), dim=-1)
        vocab = logp.shape[-1]
        total = (scores.reshape(-1, 1) + logp).reshape(batch, k * vocab)
        top_scores, top_index = total.topk(min(2 * k, k * vocab), dim=1)
        next_scores = torch.full((batch, k), float("-inf"), device=device)
        next_tokens = torch.full((batch, k), pad_id, dtype=torch.long, device=device)
        next_source = torch.arange(batch * k, device=device).view(batch, k).clone()
        new_sequences: list[list[int]] = [[] for _ in range(batch * k)]
        for b in range(batch):
            if not open_batch[b]:
                continue
            filled = 0
            for rank, (score, index) in enumerate(zip(top_scores[b].tolist(), top_index[b].tolist(), strict=True)):
                if score == float("-inf"):
                    break
                beam, token = divmod(index, vocab)
                source = b * k + beam
                if token == eos_id:
                    if rank < k:  # an ending below the k best candidates is not a hypothesis (as transformers)
                        finished[b].append((score / (t + 1), [*sequences[source], token]))
                    continue
                next_scores[b, filled] = score
                next_tokens[b, filled] = token
                next_source[b, filled] = source
                new_sequences[b * k + filled] = [*sequences[source], token]
                filled += 1
                if filled == k:
                    break
            # the best an open beam can still reach: later tokens only lower its sum, at most max_new_tokens long
            best_open = float(next_scores[b, 0]) / max_new_tokens
            if len(finished[b]) >= k and max(s for s, _ in finished[b]) >= best_open:
                open_batch[b] = False
        if not any(open_batch):
            break
        scores = next_scores
        sequences = new_sequences
        state = _reorder(state, next_source.view(-1))
        last = next_tokens.view(-1)
    results: list[list[int]] = []
    for b in range(batch):
        candidates = list(finished[b])
        if open_batch[b]:  # ran out of tokens: the open beams compete as they are
            steps = max(1, len(sequences[b * k]))
            candidates += [(float(scores[b, j]) / steps, sequences[b * k + j]) for j in range(k)
                           if scores[b, j] != float("-inf")]
        results.append(max(candidates, key=lambda c: c[0])[1] if candidates else [])
    return _pad_rows(results, pad_id, device)


def decode(decoder: StepDecoder, memory: torch.Tensor, *, bos_id: int, eos_id: int, pad_id: int,
           max_new_tokens: int, num_beams: int = 1, do_sample: bool = False, temperature: float = 1.0,
           top_p: float = 1.0, banned: tuple[int, ...] = ()) -> torch.Tensor:
    """New tokens ``[B, ≤ max_new_tokens]`` (EOS included, ``pad_id`` after it), as the settings say; the
    ``banned`` ids (special tokens other than EOS) are never generated."""
    common: dict[str, Any] = {"bos_id": bos_id, "eos_id": eos_id, "pad_id": pad_id, "max_new_tokens": max_new_tokens,
                              "banned": banned}
    if num_beams > 1:
        if do_sample:
            raise ValueError("beam sampling is not supported by the encdec decoders: "
                             "set num_beams=1 or do_sample=false")
        return beam_search(decoder, memory, num_beams=num_beams, **common)
    return sample_or_greedy(decoder, memory, do_sample=do_sample, temperature=temperature, top_p=top_p, **common)
