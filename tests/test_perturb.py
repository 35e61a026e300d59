"""Robustness perturbations: deterministic per record, bounded, and what they claim to be."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meit.errors import ConfigError
from meit.evaluation.perturb import DEFAULT_LEVELS, PerturbSpec, parse_perturbations
from meit.evaluation.robustness import write_robustness


def _signal(t=1000, seed=0):
    return np.random.default_rng(seed).normal(0, 0.3, size=(12, t)).astype(np.float32)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(DEFAULT_LEVELS)), st.floats(0, 1), st.integers(100, 3000), st.text(max_size=8))
def test_perturbations_are_deterministic_finite_and_keep_shape(name, level, length, record_id):
    x = _signal(length)
    spec = PerturbSpec(name, level if name != "dropout" else round(level * 12), seed=3)
    a, b = spec(x, 100, record_id), spec(x, 100, record_id)
    assert a.shape == x.shape and a.dtype == x.dtype and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, _signal(length))  # input untouched


def test_meit_gaussian_protocol_touches_at_most_20_percent():
    x = _signal(5000)
    changed = [(PerturbSpec("gaussian", 0.1)(x, 500, f"r{i}") != x).any(axis=0).mean() for i in range(200)]
    assert max(changed) <= 0.2 and np.mean(changed) > 0.05


def test_dropout_zeroes_exactly_k_leads_and_powerline_has_its_frequency():
    x = _signal(5000) + 1.0
    out = PerturbSpec("dropout", 3)(x, 500, "a")
    assert int((np.abs(out).sum(axis=1) == 0).sum()) == 3
    noisy = PerturbSpec("powerline", 0.5)(np.zeros((12, 5000), np.float32), 500, "b")
    peak_hz = np.fft.rfftfreq(5000, 1 / 500)[np.abs(np.fft.rfft(noisy[0])).argmax()]
    assert peak_hz in (50.0, 60.0)


def test_parse_perturbations_and_errors():
    specs = parse_perturbations(["gaussian", "dropout:1,2"])
    assert [s.label for s in specs] == ["gaussian@0.05", "gaussian@0.1", "gaussian@0.2", "dropout@1", "dropout@2"]
    with pytest.raises(ConfigError, match="unknown perturbation 'noise'"):
        parse_perturbations(["noise"])
    with pytest.raises(ConfigError, match="numbers"):
        parse_perturbations(["gaussian:a"])


def test_robustness_table_and_plot(tmp_path):
    rows = [{"perturbation": "clean", "level": 0.0, "bleu_4": 0.5, "rouge_l": 0.6},
            {"perturbation": "gaussian", "level": 0.1, "bleu_4": 0.4, "rouge_l": 0.55}]
    write_robustness(rows, tmp_path)
    assert "| gaussian | 0.1 | 0.4000 | 0.5500 |" in (tmp_path / "robustness.md").read_text()
    assert (tmp_path / "robustness.png").stat().st_size > 5000
