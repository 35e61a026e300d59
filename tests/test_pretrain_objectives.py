"""Objectives and retrieval metrics of contrastive pretraining, checked against hand-computed values."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from meit.errors import ConfigError
from meit.evaluation.ranking import auroc, chance_recall_at_k, recall_at_k
from meit.pretrain.data import report_key
from meit.pretrain.losses import gather_rows, info_nce, masked_mse, span_mask
from meit.retrieval.relevance import ecg_to_report_relevance, same_findings_relevance, unique_texts
from meit.retrieval.zeroshot import auroc_per_finding, load_prompt_sets


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_info_nce_is_symmetric_cross_entropy():
    ecg, text = _unit(6, 8, 0), _unit(6, 8, 1)
    scale = torch.tensor(10.0)
    logits = scale * ecg @ text.t()
    manual = 0.0
    for i in range(6):
        manual -= torch.log_softmax(logits[i], 0)[i] / 12 + torch.log_softmax(logits[:, i], 0)[i] / 12
    assert float(info_nce(ecg, text, scale)) == pytest.approx(float(manual), rel=1e-6)
    # distinct keys: the soft-target form equals the hard one
    keys = torch.arange(6)
    assert float(info_nce(ecg, text, scale, keys)) == pytest.approx(float(manual), rel=1e-6)


def test_identical_reports_are_interchangeable():
    ecg, text = _unit(4, 8, 2), _unit(4, 8, 3)
    # rows 0 and 1 carry the same report, embedded slightly differently (text dropout in training)
    text[1] = F.normalize(text[0] + 0.05 * _unit(1, 8, 4)[0], dim=0)
    keys = torch.tensor([7, 7, 8, 9])
    scale = torch.tensor(20.0)
    swapped = text[[1, 0, 2, 3]]
    # soft targets: which copy of the same report pairs with which ECG does not matter
    assert float(info_nce(ecg, swapped, scale, keys)) == pytest.approx(float(info_nce(ecg, text, scale, keys)))
    # hard targets treat the other copy as a negative, so the pairing changes the loss
    assert float(info_nce(ecg, swapped, scale)) != pytest.approx(float(info_nce(ecg, text, scale)))
    # perfectly aligned embeddings with duplicates reach the soft loss's floor (log of the group size)
    text[1] = text[0]
    aligned = info_nce(text.clone(), text, torch.tensor(1e4), keys)
    assert float(aligned) == pytest.approx(math.log(2) / 2, abs=1e-3)


def test_gather_rows_is_identity_on_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_rows(x) is x


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 4), samples=st.integers(1, 400), ratio=st.floats(0.01, 0.9), span=st.integers(1, 80))
def test_span_mask_shapes_and_coverage(batch, samples, ratio, span):
    mask = span_mask(batch, 12, samples, ratio, span, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (batch, 1, samples) and mask.dtype == torch.bool
    assert bool(mask.any(dim=-1).all()), "every record gets at least one masked span"
    count = max(1, round(ratio * samples / max(1, min(span, samples))))
    assert int(mask.sum(-1).max()) <= count * min(span, samples)


def test_masked_mse_counts_only_masked_samples():
    target = torch.zeros(1, 2, 5)
    prediction = torch.zeros(1, 2, 5)
    prediction[..., :2] = 3.0  # wrong where masked
    prediction[..., 4] = 100.0  # wrong where visible: ignored
    mask = torch.tensor([[[True, True, False, False, False]]])
    assert float(masked_mse(prediction, target, mask)) == pytest.approx(9.0)


def test_report_key_ignores_case_and_spacing():
    assert report_key("Sinus rhythm.  Normal ECG.") == report_key("sinus rhythm. normal ecg.")
    assert report_key("sinus rhythm") != report_key("sinus bradycardia")
    assert 0 <= report_key("x") < 2**63


def test_recall_at_k_by_hand():
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1], [0.0, 0.8, 0.7]])
    relevant = torch.tensor([[False, False, True], [True, False, False], [False, False, False]])
    r = recall_at_k(sim, relevant, [1, 2, 3])
    # query 0: relevant ranked 2nd; query 1: relevant ranked 2nd; query 2 has none and is not counted
    assert r == {1: 0.0, 2: 1.0, 3: 1.0}


def test_chance_recall_matches_enumeration():
    relevant = torch.tensor([[True, False, False, True, False], [False, False, True, False, False]])
    for k in (1, 2, 3):
        expected = []
        for row in relevant.tolist():
            rankings = list(itertools.permutations(range(5)))
            expected.append(sum(any(row[i] for i in perm[:k]) for perm in rankings) / len(rankings))
        assert chance_recall_at_k(relevant, [k])[k] == pytest.approx(sum(expected) / 2)


def test_relevance_helpers():
    texts, which = unique_texts(["a", "b", "a", "c"])
    assert texts == ["a", "b", "c"] and which == [0, 1, 0, 2]
    rel = ecg_to_report_relevance(["a", "c"], texts)
    assert rel.tolist() == [[True, False, False], [False, False, True]]
    f = [frozenset({"afib"}), frozenset({"afib"}), frozenset(), frozenset({"lbbb"})]
    same = same_findings_relevance(f, f, exclude_self=True)
    assert same[0].tolist() == [False, True, False, False]
    assert not same[2].any(), "a report that states nothing matches nothing"


def test_auroc_and_per_finding_accounting():
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))
    findings = [frozenset({"afib"})] * 3 + [frozenset()] * 3
    out = auroc_per_finding({"afib": torch.tensor([3.0, 2, 1, 0, -1, -2]), "lbbb": torch.zeros(6)}, findings,
                            min_positives=2)
    assert out["afib"] == {"auroc": 1.0, "positives": 3, "negatives": 3}
    assert out["lbbb"] == {"auroc": None, "positives": 0, "negatives": 6}


def test_default_prompt_sets_load_and_bad_files_are_named(tmp_path):
    sets = load_prompt_sets()
    assert {"afib", "lbbb", "rbbb", "sinus_brady"} <= {s.finding for s in sets}
    assert all(s.positive and s.negative for s in sets)
    bad = tmp_path / "p.yaml"
    bad.write_text("a_fib:\n  positive: [x]\n  negative: [y]\n")
    with pytest.raises(ConfigError, match="unknown finding 'a_fib'"):
        load_prompt_sets(bad)
    bad.write_text("afib:\n  positive: []\n  negative: [y]\n")
    with pytest.raises(ConfigError, match=r"afib.positive"):
        load_prompt_sets(bad)
