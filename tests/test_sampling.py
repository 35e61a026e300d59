"""Finding-balanced sampling: weights from the reports' findings, a seeded epoch-aware sampler, the recipe key."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meit.config import load_recipe
from meit.data.sampling import WeightedEpochSampler, finding_balance_weights
from meit.errors import ConfigError

COMMON = "Sinus rhythm, rate 72 bpm. Normal ECG."
RARE = "Sinus rhythm, rate 70 bpm. Right bundle branch block (QRS 140 ms). Abnormal ECG."
NOTHING = "Technically limited recording."


def test_rare_findings_weigh_more_and_power_sets_how_much():
    reports = [COMMON] * 18 + [RARE] * 2
    sqrt = finding_balance_weights(reports, 0.5)
    inverse = finding_balance_weights(reports, 1.0)
    assert sqrt.mean() == pytest.approx(1.0) and inverse.mean() == pytest.approx(1.0)
    # rbbb is stated by 2 of 20 reports, the rarest finding of the common reports by 18 of 20 (or 20 of 20)
    assert sqrt[-1] / sqrt[0] == pytest.approx(3.0)
    assert inverse[-1] / inverse[0] == pytest.approx(9.0)
    np.testing.assert_allclose(finding_balance_weights(reports, 0.0), np.ones(20))


def test_a_report_without_findings_weighs_as_the_commonest_finding():
    weights = finding_balance_weights([COMMON, COMMON, COMMON, NOTHING], 1.0)
    assert weights[3] == pytest.approx(weights[0])


def test_bad_power_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        finding_balance_weights([COMMON], 2.0)


def test_sampler_draws_in_proportion_to_weights():
    sampler = WeightedEpochSampler([1.0, 3.0], seed=0)
    counts: Counter[int] = Counter()
    for epoch in range(200):
        sampler.set_epoch(epoch)
        counts.update(sampler)
    assert counts[1] / (counts[0] + counts[1]) == pytest.approx(0.75, abs=0.05)


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=50).filter(lambda w: sum(w) > 0),
       seed=st.integers(0, 2**31 - 1), epoch=st.integers(0, 1000))
def test_sampler_is_deterministic_per_seed_and_epoch_and_never_draws_a_zero_weight(weights, seed, epoch):
    a, b = WeightedEpochSampler(weights, seed), WeightedEpochSampler(weights, seed)
    a.set_epoch(epoch)
    b.set_epoch(epoch)
    drawn = list(a)
    assert drawn == list(b) and len(drawn) == len(weights) == len(a)
    assert all(weights[i] > 0 for i in drawn)


def test_epochs_draw_different_orders():
    sampler = WeightedEpochSampler(np.ones(64), seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first


@pytest.mark.parametrize("weights", [[], [0.0, 0.0], [1.0, float("nan")], [1.0, -1.0], [[1.0]]])
def test_sampler_refuses_weights_it_cannot_draw_from(weights):
    with pytest.raises(ValueError, match="weights"):
        WeightedEpochSampler(weights)


def test_recipe_refuses_two_training_orders(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  llm: tiny-llama\n")
    with pytest.raises(ConfigError, match="group_by_length"):
        load_recipe(recipe, ["data.group_by_length=true", "data.balance_findings=0.5"])
    assert load_recipe(recipe, ["data.balance_findings=0.5"]).data.balance_findings == 0.5
    with pytest.raises(ConfigError, match="balance_findings"):
        load_recipe(recipe, ["data.balance_findings=1.5"])
