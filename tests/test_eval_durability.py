"""An evaluation never loses its generations to a scorer (issue 19, item 3).

Scorers that cannot run here are found before the first report is generated; predictions are on disk
before any scoring starts, so a scorer failing mid-way keeps them.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from meit.config import load_recipe
from meit.errors import ConfigError, OfflineError
from meit.evaluation import metrics, runner


def _never_generate(*args, **kwargs):
    raise AssertionError("generation started although a scorer could not run")


def test_missing_wordnet_stops_the_evaluation_before_generating(tmp_path, monkeypatch):
    monkeypatch.setenv("MEIT_CACHE", str(tmp_path / "cache"))  # no WordNet built here yet
    monkeypatch.setenv("MEIT_WORDNET_SOURCE", str(tmp_path / "no-wordnet"))
    metrics._meteor_tools.cache_clear()
    monkeypatch.setattr(runner, "generate_reports", _never_generate)
    recipe = load_recipe(None, [f"data.path={tmp_path}"])
    try:
        with pytest.raises(OfflineError, match=r"WordNet 3\.0 .* not found"):
            runner.evaluate_model(object(), recipe, tmp_path / "out")
    finally:
        metrics._meteor_tools.cache_clear()  # the next test sets WordNet up from the real source again
    assert not (tmp_path / "out").exists()


def test_missing_bert_score_stops_the_evaluation_before_generating(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bert_score" else real_find_spec(name, *a))
    monkeypatch.setattr(runner, "generate_reports", _never_generate)
    recipe = load_recipe(None, [f"data.path={tmp_path}", "eval.bertscore=true", "eval.meteor=false"])
    with pytest.raises(ConfigError, match="bert-score package"):
        runner.evaluate_model(object(), recipe, tmp_path / "out")


def test_predictions_survive_a_scorer_failing(tmp_path, monkeypatch, prepared_100hz):
    from .test_models_fusion import make_model

    rows = [{"id": "1", "prediction": "sinus rhythm", "reference": "sinus rhythm"}]
    monkeypatch.setattr(runner, "generate_reports", lambda *a, **k: rows)

    def broken_scorer(*args, **kwargs):
        raise RuntimeError("scorer crashed")

    monkeypatch.setattr(runner, "score_rows", broken_scorer)
    recipe = load_recipe(None, [f"data.path={prepared_100hz}", "eval.meteor=false", "model.max_length=96"])
    with pytest.raises(RuntimeError, match="scorer crashed"):
        runner.evaluate_model(make_model("tiny-llama", "kv"), recipe, tmp_path / "out", controls=[])
    saved = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert saved == rows
    assert not (tmp_path / "out" / "metrics.json").exists()
