"""The baseline's word-level vocabulary, built from the training reports, as a transformers tokenizer.

Words and punctuation marks are tokens (a word carries the ``▁`` space marker when a space precedes
it, so decoding restores the spacing exactly: "rate 72 bpm." → ``▁rate ▁72 ▁bpm .`` → "rate 72 bpm.").
Being a ``PreTrainedTokenizerFast``, it goes through meit's prompt encoding, collator, generation and
metrics like any backbone's tokenizer. Its chat template renders only ``<bos>``: the instruction never
reaches the model, which reads nothing but the ECG (``docs/models.md``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from meit.errors import DataError

PAD, UNK, BOS, EOS, ECG = "<pad>", "<unk>", "<bos>", "<eos>", "<ecg>"
#: ids 0..4 in this order in every vocabulary
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, BOS, EOS, ECG)
SPACE = "\u2581"
#: every prompt is `<bos>`: the report follows it; instructions and system messages are dropped
CHAT_TEMPLATE = "{{ bos_token }}"


def _pre_tokenizer() -> Any:
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="first"),
        pre_tokenizers.Punctuation("isolated"),
    ])


def _normalizer(lowercase: bool) -> Any:
    from tokenizers import normalizers

    steps = [normalizers.NFC()] + ([normalizers.Lowercase()] if lowercase else [])
    return normalizers.Sequence(steps)


def count_words(reports: Iterable[str], *, lowercase: bool = False) -> Counter[str]:
    """How often each word/punctuation token occurs in ``reports`` (as the tokenizer splits them)."""
    pre, norm = _pre_tokenizer(), _normalizer(lowercase)
    counts: Counter[str] = Counter()
    for report in reports:
        text = norm.normalize_str(str(report).strip())
        counts.update(word for word, _ in pre.pre_tokenize_str(text))
    return counts


def choose_words(counts: Counter[str], *, min_count: int, max_size: int) -> list[str]:
    """Words used at least ``min_count`` times, most frequent first (ties alphabetical), at most ``max_size``."""
    kept = [(word, n) for word, n in counts.items() if n >= min_count and word not in SPECIAL_TOKENS]
    kept.sort(key=lambda item: (-item[1], item[0]))
    return [word for word, _ in kept[:max_size]]


def build_word_tokenizer(reports: Iterable[str], *, min_count: int = 2, max_size: int = 5000,
                         lowercase: bool = False) -> Any:
    """A deterministic word-level ``PreTrainedTokenizerFast`` over the words of ``reports``.

    Pass the training split's reports only: the evaluated splits' words must not leak into the
    vocabulary (an unseen word is ``<unk>``, which decoding drops).
    """
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    counts = count_words(reports, lowercase=lowercase)
    if not counts:
        raise DataError("cannot build the encdec vocabulary: the training reports are empty")
    words = choose_words(counts, min_count=min_count, max_size=max_size)
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.normalizer = _normalizer(lowercase)
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="first")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, unk_token=UNK, bos_token=BOS,
                                   eos_token=EOS, additional_special_tokens=[ECG])
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def vocabulary_stats(tokenizer: Any, reports: Iterable[str]) -> dict[str, float]:
    """Size of the vocabulary and the share of report tokens it maps to ``<unk>`` (coverage of a split)."""
    unk = tokenizer.unk_token_id
    total = unknown = 0
    for report in reports:
        ids = tokenizer(str(report).strip(), add_special_tokens=False)["input_ids"]
        total += len(ids)
        unknown += sum(1 for i in ids if i == unk)
    return {"size": len(tokenizer), "tokens": total, "unk_share": unknown / total if total else 0.0}
