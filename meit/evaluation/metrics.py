"""Corpus-level report metrics, reproducing MEIT's published protocol by default.

BLEU-1..4, ROUGE-L and CIDEr-D are pycocoevalcap 1.2's own scorers run once over the whole set as
``{id: [text]}`` dicts after :func:`~meit.evaluation.tokenize.meit_tokenize` (never per batch).
METEOR is NLTK's ``meteor_score`` per pair (offline WordNet, Punkt-free tokeniser) averaged over pairs;
ROUGE-1/2 are ``rouge_score`` F-measures averaged over pairs; BERTScore F1 (optional) uses the
packaged all-MiniLM-L6-v2. Definitions and known differences: ``docs/metrics.md``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from meit.errors import ConfigError, DataError, ModelError, OfflineError
from meit.evaluation.tokenize import meit_tokenize, meteor_tokenize

#: Keys always present in :func:`compute_metrics` output (besides ``n`` and optional ones).
CORE_KEYS: tuple[str, ...] = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d")
ROUGE12_KEYS: tuple[str, ...] = ("rouge_1", "rouge_2")
BERTSCORE_KEY = "bertscore_f1"
#: ``rouge_score`` settings for ROUGE-1/2: its default tokenizer (lowercase, non-alphanumerics
#: dropped) and no Porter stemming, as Hugging Face ``evaluate``'s ``rouge`` does by default.
ROUGE12_USE_STEMMER = False
BERTSCORE_NUM_LAYERS = 6


def check_pairs(predictions: Mapping[str, str], references: Mapping[str, str]) -> list[str]:
    """Ids in reference order; DataError unless both sides have exactly the same ids and str texts."""
    pred_ids, ref_ids = set(predictions), set(references)
    if pred_ids != ref_ids:
        only_p = sorted(map(str, pred_ids - ref_ids))
        only_r = sorted(map(str, ref_ids - pred_ids))
        raise DataError(
            "prediction and reference ids differ: "
            f"{len(only_p)} only in predictions (e.g. {only_p[:5]}), "
            f"{len(only_r)} only in references (e.g. {only_r[:5]})"
        )
    if not ref_ids:
        raise DataError("nothing to score: no prediction/reference pairs")
    for side, mapping in (("prediction", predictions), ("reference", references)):
        for key, text in mapping.items():
            if not isinstance(text, str):
                raise DataError(f"{side} for id {key!r} is {type(text).__name__}, expected str")
    return list(references)


def coco_inputs(
    predictions: Mapping[str, str], references: Mapping[str, str], ids: Sequence[str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """``(gts, res)`` dicts exactly as MEIT fed pycocoevalcap: ``{id: [meit_tokenize(text)]}``."""
    gts = {i: [meit_tokenize(references[i])] for i in ids}
    res = {i: [meit_tokenize(predictions[i])] for i in ids}
    return gts, res


def coco_bleu(gts: dict[str, list[str]], res: dict[str, list[str]]) -> list[float]:
    """pycocoevalcap ``Bleu(4)`` corpus BLEU-1..4 ('closest' reference length), its prints silenced."""
    from pycocoevalcap.bleu.bleu import Bleu

    with contextlib.redirect_stdout(io.StringIO()):
        score, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return [float(s) for s in score]


def coco_rouge_l(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    """pycocoevalcap ``Rouge()``: LCS F-measure with beta 1.2 per pair, mean over pairs."""
    from pycocoevalcap.rouge.rouge import Rouge

    score, _ = Rouge().compute_score(gts, res)
    return float(score)


def coco_cider_d(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    """pycocoevalcap 1.2 ``Cider()`` — which is CIDEr-D (clipped tf-idf, Gaussian length penalty,
    sigma 6, x10), document frequencies from the references of the scored set.

    pycocoevalcap crashes (``max()`` of nothing) when no reference has a single token; every
    tf-idf vector is then empty and the score is 0, which we return directly.
    """
    from pycocoevalcap.cider.cider import Cider

    if not any(ref.split() for refs in gts.values() for ref in refs):
        return 0.0
    score, _ = Cider().compute_score(gts, res)
    return float(score)


class _CachedWordNet:
    """Memoises ``synsets(word)``: same answers as NLTK's reader, without re-reading per pair."""

    def __init__(self, reader: Any) -> None:
        self.synsets: Callable[[str], list[Any]] = lru_cache(maxsize=None)(reader.synsets)


class _CachedStemmer:
    """Memoises a stemmer's ``stem`` (Porter is the slowest step of METEOR on repetitive reports)."""

    def __init__(self, stemmer: Any) -> None:
        self.stem: Callable[[str], str] = lru_cache(maxsize=None)(stemmer.stem)


@lru_cache(maxsize=1)
def _meteor_tools() -> tuple[Any, Any]:
    from nltk.corpus import wordnet
    from nltk.stem.porter import PorterStemmer

    from meit.evaluation.wordnet import ensure_wordnet

    ensure_wordnet()
    try:
        wordnet.ensure_loaded()
    except LookupError as err:  # pragma: no cover - ensure_wordnet prevents this
        raise OfflineError(f"NLTK cannot load WordNet after set-up: {err}") from err
    return _CachedWordNet(wordnet), _CachedStemmer(PorterStemmer())


def nltk_meteor(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean over pairs of ``meteor_score([tok(ref)], tok(pred))`` with NLTK's default parameters."""
    from nltk.translate.meteor_score import meteor_score

    wordnet, stemmer = _meteor_tools()
    scores = [
        meteor_score([meteor_tokenize(ref)], meteor_tokenize(pred), stemmer=stemmer, wordnet=wordnet)
        for pred, ref in zip(predictions, references, strict=True)
    ]
    return float(sum(scores) / len(scores))


def rouge_1_2(predictions: Sequence[str], references: Sequence[str]) -> tuple[float, float]:
    """Mean over pairs of ``rouge_score`` ROUGE-1 and ROUGE-2 F-measures on the raw texts."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rouge1", "rouge2"], use_stemmer=ROUGE12_USE_STEMMER)
    r1 = r2 = 0.0
    for pred, ref in zip(predictions, references, strict=True):
        s = scorer.score(ref, pred)
        r1 += s["rouge1"].fmeasure
        r2 += s["rouge2"].fmeasure
    return r1 / len(predictions), r2 / len(predictions)


def minilm_path() -> str:
    """Local directory of the packaged all-MiniLM-L6-v2 BERT used for BERTScore."""
    from meit.models.text import minilm_path as packaged

    return packaged("BERTScore (--bertscore)")


def bertscore_f1(predictions: Sequence[str], references: Sequence[str], *, batch_size: int = 64) -> float:
    """Mean BERTScore F1 (layer 6 of the local MiniLM, no idf, no baseline rescaling); never the hub.

    A pair with an empty (blank) side scores 0, as bert-score defines it; we do not pass such pairs
    to bert-score 0.3.13, whose empty-sentence path breaks on transformers 5.
    """
    try:
        import bert_score
    except ImportError as err:
        raise ConfigError("BERTScore needs the bert-score package: pip install 'meit[bertscore]'") from err
    path = minilm_path()
    keep = [i for i, (p, r) in enumerate(zip(predictions, references, strict=True)) if p.strip() and r.strip()]
    total = 0.0
    if keep:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                _, _, f1 = bert_score.score(
                    [predictions[i] for i in keep], [references[i] for i in keep], model_type=path,
                    num_layers=BERTSCORE_NUM_LAYERS, batch_size=batch_size, verbose=False,
                )
        except OSError as err:  # transformers reports missing local files this way
            raise ModelError(f"cannot load the BERTScore model from {path}: {err}") from err
        total = float(f1.double().sum())
    return total / len(predictions)


def check_scorers(*, meteor: bool, bertscore: bool) -> None:
    """Fail before any generation when a requested scorer cannot run here (WordNet, bert-score, MiniLM).

    A long generation pass that ends in "METEOR needs WordNet" wastes the run; this costs a few
    file checks (and the one-time WordNet set-up, which scoring would do anyway).
    """
    if meteor:
        _meteor_tools()
    if bertscore:
        if importlib.util.find_spec("bert_score") is None:
            raise ConfigError("BERTScore needs the bert-score package: pip install 'meit[bertscore]' "
                              "(or drop --bertscore / eval.bertscore)")
        minilm_path()


def compute_metrics(
    predictions: Mapping[str, str],
    references: Mapping[str, str],
    *,
    meteor: bool = True,
    bertscore: bool = False,
    rouge12: bool = True,
) -> dict[str, float]:
    """All report metrics over the set ``{id: text}`` (ids must match exactly).

    Returns ``n`` and ``bleu_1..4``, ``rouge_l``, ``cider_d``, plus ``meteor``, ``rouge_1``/``rouge_2``
    and ``bertscore_f1`` when enabled. Empty predictions are scored (as zero matches), never an error.
    """
    ids = check_pairs(predictions, references)
    gts, res = coco_inputs(predictions, references, ids)
    b1, b2, b3, b4 = coco_bleu(gts, res)
    out: dict[str, float] = {"n": len(ids), "bleu_1": b1, "bleu_2": b2, "bleu_3": b3, "bleu_4": b4}
    preds = [predictions[i] for i in ids]
    refs = [references[i] for i in ids]
    if meteor:
        out["meteor"] = nltk_meteor(preds, refs)
    out["rouge_l"] = coco_rouge_l(gts, res)
    out["cider_d"] = coco_cider_d(gts, res)
    if rouge12:
        out["rouge_1"], out["rouge_2"] = rouge_1_2(preds, refs)
    if bertscore:
        out[BERTSCORE_KEY] = bertscore_f1(preds, refs)
    return out
