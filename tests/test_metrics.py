"""compute_metrics against direct pycocoevalcap / NLTK / rouge_score calls (MEIT's protocol, to 1e-6)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meit.errors import DataError
from meit.evaluation.metrics import compute_metrics
from meit.evaluation.tokenize import split_sentences

TOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def _wordnet() -> None:
    from meit.evaluation.wordnet import ensure_wordnet

    ensure_wordnet()


def _meit(text: str) -> str:
    return re.sub(" +", " ", text.replace(".", " ."))


def reference_metrics(preds: dict[str, str], refs: dict[str, str]) -> dict[str, float]:
    """The published protocol written out with the libraries' own entry points."""
    from nltk.tokenize import word_tokenize
    from nltk.translate.meteor_score import meteor_score
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from rouge_score.rouge_scorer import RougeScorer

    gts = {i: [_meit(refs[i])] for i in refs}
    res = {i: [_meit(preds[i])] for i in refs}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge_l, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)

    def tok(text: str) -> list[str]:  # word_tokenize after a sentence split (Punkt is not available)
        return [t for s in split_sentences(text) for t in word_tokenize(s, preserve_line=True)]

    meteor = [meteor_score([tok(refs[i])], tok(preds[i])) for i in refs]
    scorer = RougeScorer(["rouge1", "rouge2"], use_stemmer=False)
    r = [scorer.score(refs[i], preds[i]) for i in refs]
    n = len(refs)
    return {
        "bleu_1": bleu[0], "bleu_2": bleu[1], "bleu_3": bleu[2], "bleu_4": bleu[3],
        "meteor": sum(meteor) / n, "rouge_l": float(rouge_l), "cider_d": float(cider),
        "rouge_1": sum(x["rouge1"].fmeasure for x in r) / n, "rouge_2": sum(x["rouge2"].fmeasure for x in r) / n,
    }


def assert_same(preds: dict[str, str], refs: dict[str, str]) -> dict[str, float]:
    got = compute_metrics(preds, refs)
    want = reference_metrics(preds, refs)
    assert got["n"] == len(refs)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=TOL), key
    return got


REPORTS = [
    ("sinus rhythm. normal ecg.", "sinus rhythm. normal ecg."),
    ("sinus bradycardia. left axis deviation. abnormal ecg.", "sinus rhythm. left axis deviation. borderline ecg."),
    ("atrial fibrillation with rapid ventricular response.", "atrial fibrillation with rvr. st-t changes."),
    ("", "sinus tachycardia. no st elevation."),
    ("the the the the the the", "the cat sat on the mat"),
    ("Sinus Rhythm. Normal ECG.", "sinus rhythm. normal ecg."),
    ("pr 0.16 s, qrs 0.09 s; qt/qtc 400/420 ms!", "pr 0.16 s, qrs 0.10 s; qt/qtc 398/421 ms"),
    ("...", "sinus rhythm."),
    ("   ", "lvh with repolarization abnormality"),
    ("rbbb (right bundle branch block) -- consider lafb?", "rbbb. lafb."),
    ("inferior infarct, age undetermined\nlateral st depression", "inferior infarct. lateral st depression."),
    ("low qrs voltages.low qrs voltages.", "low qrs voltages in limb leads."),
    ("\"prolonged qt\" [borderline]", "prolonged qt"),
    ("premature ventricular complexes; pvcs x2", "pvc(s)"),
]


def test_varied_report_pairs_match_libraries() -> None:
    preds = {f"r{k}": p for k, (p, _) in enumerate(REPORTS)}
    refs = {f"r{k}": r for k, (_, r) in enumerate(REPORTS)}
    got = assert_same(preds, refs)
    assert set(got) == {"n", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d",
                        "rouge_1", "rouge_2"}
    assert all(isinstance(v, float) for k, v in got.items() if k != "n")


def test_identical_and_disjoint_sets() -> None:
    refs = {str(k): r for k, (_, r) in enumerate(REPORTS) if r.strip()}
    same = assert_same(dict(refs), refs)
    assert same["bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert same["rouge_l"] == pytest.approx(1.0)
    disjoint = assert_same({k: "zzz yyy xxx" for k in refs}, refs)
    assert disjoint["bleu_1"] < 1e-6 and disjoint["cider_d"] == 0.0 and disjoint["meteor"] == 0.0


def test_empty_predictions_do_not_crash() -> None:
    refs = {"a": "sinus rhythm.", "b": "atrial fibrillation.", "c": "normal ecg."}
    got = assert_same({k: "" for k in refs}, refs)
    assert all(got[k] == pytest.approx(0.0, abs=1e-6) for k in got if k != "n")
    assert_same({"a": "", "b": "atrial fibrillation.", "c": "  "}, refs)


def test_single_pair() -> None:
    assert_same({"x": "sinus rhythm with pvcs."}, {"x": "sinus rhythm with pacs."})


def test_empty_references_give_zero_cider_instead_of_crashing() -> None:
    # pycocoevalcap's Cider raises on a set whose references have no tokens at all.
    from pycocoevalcap.rouge.rouge import Rouge

    got = compute_metrics({"a": "sinus rhythm", "b": ""}, {"a": "", "b": " "})
    assert got["cider_d"] == 0.0 and got["meteor"] == 0.0 and got["bleu_1"] < 1e-6
    # pycocoevalcap splits ROUGE-L tokens on single spaces, so "" and " " hold empty tokens that match.
    want, _ = Rouge().compute_score({"a": [""], "b": [" "]}, {"a": ["sinus rhythm"], "b": [""]})
    assert got["rouge_l"] == pytest.approx(want, abs=TOL) and got["rouge_l"] > 0
    assert_same({"a": "sinus rhythm", "b": "x"}, {"a": "", "b": "sinus rhythm"})  # some empty refs


def test_pycocoevalcap_prints_are_silenced(capsys: pytest.CaptureFixture[str]) -> None:
    compute_metrics({"a": "sinus rhythm"}, {"a": "sinus rhythm"}, meteor=False)
    assert capsys.readouterr().out == ""


def test_optional_metrics_can_be_switched_off() -> None:
    got = compute_metrics({"a": "x y"}, {"a": "x y"}, meteor=False, rouge12=False)
    assert set(got) == {"n", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"}


def test_corpus_level_not_mean_of_sentence_bleu() -> None:
    preds = {"a": "sinus rhythm normal ecg", "b": "atrial fibrillation"}
    refs = {"a": "sinus rhythm normal ecg", "b": "sinus tachycardia with pvcs"}
    got = compute_metrics(preds, refs, meteor=False)
    # corpus BLEU-1 pools clipped counts: (4 + 0) / (4 + 2), times the brevity penalty exp(1 - 8/6)
    import math

    assert got["bleu_1"] == pytest.approx(4 / 6 * math.exp(1 - 8 / 6), abs=1e-6)


@pytest.mark.parametrize(
    ("preds", "refs", "match"),
    [
        ({"a": "x"}, {"b": "x"}, "ids differ"),
        ({"a": "x", "b": "y"}, {"a": "x"}, "1 only in predictions"),
        ({}, {}, "nothing to score"),
        ({"a": None}, {"a": "x"}, "prediction for id 'a' is NoneType"),
        ({"a": "x"}, {"a": 3}, "reference for id 'a' is int"),
    ],
)
def test_bad_inputs_raise_data_error(preds: dict, refs: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        compute_metrics(preds, refs, meteor=False)


WORDS = ["sinus", "rhythm", "Rhythm", "ecg", "ECG", "normal", "st", "st-t", "elevation", "no", "with",
         "qrs", "0.16", "ms", "the", "the", "the", "(", ")", ",", ";", "'s", "n't", "\"", "-", "/", "%"]
sentence = st.lists(st.sampled_from(WORDS), min_size=0, max_size=12).map(" ".join)
report = st.lists(sentence, min_size=0, max_size=3).map(lambda s: ". ".join(s) + ("." if s else ""))
raw_text = st.text(alphabet=st.sampled_from(list("ab .,!?'\"-()\n\tAB1")), max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(st.one_of(report, raw_text), st.one_of(report, raw_text)), min_size=1, max_size=6))
def test_generated_texts_match_libraries(pairs: list[tuple[str, str]]) -> None:
    preds = {f"id{k}": p for k, (p, _) in enumerate(pairs)}
    refs = {f"id{k}": r for k, (_, r) in enumerate(pairs)}
    if not any(r.split() for r in refs.values()):
        refs["extra"], preds["extra"] = "sinus rhythm", "sinus"  # all-empty refs: covered above
    assert_same(preds, refs)
