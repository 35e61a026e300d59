"""`meit eval --verify` (and `eval.verify` in a recipe): verdicts next to the predictions, corpus figures in
metrics.json, for the clean pass and each control, each record measured once."""

import json

import pytest

from meit.cli import main
from meit.config import load_recipe
from meit.training import train

TINY = ["model.llm=tiny-gpt2", "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8",
        "model.max_length=96", "train.batch_size=4", "train.max_steps=2", "train.trackers=[]", "data.fs=100"]


@pytest.fixture(scope="module")
def artifact(prepared_100hz, tmp_path_factory):
    out = tmp_path_factory.mktemp("verify_eval_run")
    recipe = load_recipe(None, [f"data.path={prepared_100hz}", f"output_dir={out}", *TINY])
    return train(recipe, progress=False).final_dir


def test_eval_verify_writes_verdicts_and_contradiction_figures(artifact, prepared_100hz, tmp_path, capsys,
                                                              monkeypatch):
    import meit.verify.corpus as corpus

    measured = []
    original = corpus.measure_ecg
    monkeypatch.setattr(corpus, "measure_ecg", lambda signal, fs: measured.append(fs) or original(signal, fs))
    out = tmp_path / "eval"
    code = main(["eval", "--checkpoint", str(artifact), "--data", str(prepared_100hz), "--split", "test",
                 "--out", str(out), "--max-samples", "4", "--max-new-tokens", "6", "--no-meteor",
                 "--control", "shuffled", "--verify", "--no-progress"])
    assert code == 0
    assert "checkable statements contradicted by the signal" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    figures = metrics["verification"]
    assert figures["n_records"] == 4
    assert figures["n_statements"] == figures["n_checkable"] + figures["n_not_checkable"]
    assert metrics.get("verify_contradicted_share") == figures["contradicted_share"]
    lines = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()]
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [p["id"] for p in predictions]
    assert all({"statements", "summary", "measured"} <= set(line) for line in lines)
    assert all(line["measured"]["heart_rate"] is not None for line in lines)  # the stored signals were read
    assert sum(line["summary"]["contradicted"] for line in lines) == figures["n_contradicted"]
    nothing = [line for line in lines if line["summary"]["supported"] + line["summary"]["contradicted"] == 0]
    assert len(nothing) == figures["records_nothing_checkable"]  # counted, not left out
    control = json.loads((out / "controls" / "shuffled" / "metrics.json").read_text())
    assert control["verification"]["n_records"] == 4
    assert (out / "controls" / "shuffled" / "verdicts.jsonl").is_file()
    assert measured == [100] * 4  # the control's reports were checked against the same measurements


def test_recipe_key_and_default():
    assert load_recipe(None, []).eval.verify is False
    assert load_recipe(None, ["eval.verify=true"]).eval.verify is True
