"""Tokenisation used by the metrics, fixed so that scores are reproducible.

* BLEU / ROUGE-L / CIDEr-D (pycocoevalcap) see :func:`meit_tokenize`: MEIT's own rule, a space before
  every ``.`` and runs of spaces collapsed; nothing else (no lowercasing, no other punctuation split).
  pycocoevalcap then splits on whitespace (BLEU, CIDEr-D) or on single spaces (ROUGE-L).
* METEOR sees :func:`meteor_tokenize`, an offline stand-in for NLTK's ``word_tokenize``: that function
  needs the Punkt sentence model (a download); we split sentences with a regex instead and run the
  same Treebank-style ``NLTKWordTokenizer`` on each sentence, exactly as ``word_tokenize`` does after
  Punkt. See ``docs/metrics.md`` for where the two can differ.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SPACES = re.compile(" +")

# A sentence ends at . ? or ! (optionally followed by closing quotes / brackets) followed by whitespace.
# Punkt additionally keeps known abbreviations, initials and some numbers inside a sentence.
_SENTENCE_END_KEEP = re.compile(r"""([.?!]["')\]}]*)\s+""")


def meit_tokenize(text: str) -> str:
    """MEIT's pre-processing before pycocoevalcap: ``re.sub(' +', ' ', text.replace('.', ' .'))``."""
    return _SPACES.sub(" ", text.replace(".", " ."))


def split_sentences(text: str) -> list[str]:
    """Split after sentence-final ``.``/``?``/``!`` (plus closing quotes/brackets) and whitespace."""
    text = text.strip()
    if not text:
        return []
    parts = _SENTENCE_END_KEEP.split(text)
    # re.split with one group gives [sent, end, sent, end, ..., sent]; glue each end back on.
    sentences = [parts[i] + (parts[i + 1] if i + 1 < len(parts) else "") for i in range(0, len(parts), 2)]
    return [s for s in sentences if s.strip()]


@lru_cache(maxsize=1)
def _word_tokenizer():  # type: ignore[no-untyped-def]
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def meteor_tokenize(text: str) -> list[str]:
    """``word_tokenize`` without Punkt: regex sentence split, then ``NLTKWordTokenizer`` per sentence.

    Equal to ``nltk.word_tokenize(text)`` whenever Punkt would split the text at the same places
    (always for a single sentence: then it equals ``word_tokenize(text, preserve_line=True)``).
    """
    tokenizer = _word_tokenizer()
    sentences = split_sentences(text)
    if len(sentences) <= 1:
        # one sentence: tokenise the text as given (leading whitespace changes how NLTK reads a quote)
        return tokenizer.tokenize(text) if sentences else []
    return [tok for sent in sentences for tok in tokenizer.tokenize(sent)]
