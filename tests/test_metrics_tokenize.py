"""Tokenisation: MEIT's rule, and the Punkt-free METEOR tokeniser against NLTK's word_tokenize."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.tokenize import word_tokenize

from meit.evaluation.tokenize import meit_tokenize, meteor_tokenize, split_sentences


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("sinus rhythm. normal ecg.", "sinus rhythm . normal ecg ."),
        ("pr 0.16 s", "pr 0 .16 s"),
        ("a  b   c", "a b c"),
        ("Case Kept, commas kept!", "Case Kept, commas kept!"),
        ("", ""),
        ("...", " . . ."),
        ("tab\tand\nnewline  kept", "tab\tand\nnewline kept"),
    ],
)
def test_meit_tokenize(text: str, want: str) -> None:
    assert meit_tokenize(text) == want


@given(st.text(max_size=60))
def test_meit_tokenize_is_their_expression(text: str) -> None:
    assert meit_tokenize(text) == re.sub(" +", " ", text.replace(".", " ."))


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("sinus rhythm. normal ecg.", ["sinus rhythm.", "normal ecg."]),
        ("afib? consider flutter! ok", ["afib?", "consider flutter!", "ok"]),
        ('he said "stop." then left', ['he said "stop."', "then left"]),
        ("qrs 0.09 s. pr 0.16", ["qrs 0.09 s.", "pr 0.16"]),
        ("no break.here", ["no break.here"]),
        ("", []),
        ("  \n ", []),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_multi_sentence_splits_every_final_period() -> None:
    # word_tokenize without the sentence split would keep "rhythm." as one token.
    assert meteor_tokenize("sinus rhythm. normal ecg.") == ["sinus", "rhythm", ".", "normal", "ecg", "."]


single_sentence = st.text(alphabet=st.sampled_from(list("abcXY019 ,;:'\"()[]-/%$&.?!\t")), max_size=40).filter(
    lambda t: len(split_sentences(t)) <= 1
)


@settings(max_examples=300)
@given(single_sentence)
def test_single_sentence_equals_word_tokenize(text: str) -> None:
    assert meteor_tokenize(text) == word_tokenize(text, preserve_line=True)


@pytest.mark.parametrize(
    "text",
    ["sinus rhythm with 1st degree av block", "Left axis deviation, consider LAFB.",
     "qt/qtc 400/420 ms (borderline)", "don't rule out \"ischemia\"", "rate 72 bpm!"],
)
def test_report_sentences_equal_word_tokenize(text: str) -> None:
    assert meteor_tokenize(text) == word_tokenize(text, preserve_line=True)
