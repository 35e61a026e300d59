"""Evaluation controls (shuffled / zero ECGs), the grounding block and distinct-report share."""

import csv
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meit.cli import main
from meit.config import load_recipe
from meit.errors import ConfigError, DataError
from meit.evaluation.controls import ShuffledEcg, ZerosEcg, build_control, derangement, grounding
from meit.evaluation.scoring import report_diversity

TINY = ["model.llm=tiny-gpt2", "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8",
        "model.max_length=96", "train.batch_size=4", "train.max_steps=2", "train.trackers=[]", "data.fs=100"]


# --- the derangement ---------------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.integers(2, 2000), st.integers(0, 2**63 - 1))
def test_derangement_is_a_permutation_without_fixed_point_and_deterministic(n, seed):
    p = derangement(n, seed)
    assert p.shape == (n,) and p.dtype.kind == "i"
    np.testing.assert_array_equal(np.sort(p), np.arange(n))
    assert not (p == np.arange(n)).any()
    np.testing.assert_array_equal(p, derangement(n, seed))


def test_derangement_differs_across_seeds_and_rejects_what_it_cannot_do():
    np.testing.assert_array_equal(derangement(2, 0), [1, 0])  # the only one
    for n in range(3, 60):
        assert len({tuple(derangement(n, seed)) for seed in range(6)}) > 1, n
    assert len({tuple(derangement(100, seed)) for seed in range(20)}) == 20
    for n in (0, 1):
        with pytest.raises(ValueError, match="at least 2"):
            derangement(n, 0)
    with pytest.raises(ValueError, match="seed"):
        derangement(5, -1)


# --- the signal hooks --------------------------------------------------------------------------------------------

def _rows(ids, fs=(100,)):
    from datasets import Dataset

    rng = np.random.default_rng(0)
    return Dataset.from_dict({"id": list(ids), "fs": [fs[i % len(fs)] for i in range(len(ids))],
                              "ecg": [rng.normal(size=(12, 50)).astype(np.float32) for _ in ids]})


def test_shuffled_hook_reads_the_partner_row_and_checks_its_input():
    rows = _rows([f"r{i}" for i in range(7)])
    control = ShuffledEcg(rows, seed=3)
    signals = [np.asarray(s, np.float32) for s in rows["ecg"]]
    for i, record_id in enumerate(rows["id"]):
        j = int(control.partner[i])
        assert j != i and control.source_of(record_id) == f"r{j}"
        np.testing.assert_array_equal(control(signals[i], 100, record_id), signals[j])
    with pytest.raises(DataError, match="not in the subset"):
        control(signals[0], 100, "elsewhere")
    with pytest.raises(DataError, match="unique record ids"):
        ShuffledEcg(_rows(["a", "b", "a"]), seed=0)
    with pytest.raises(DataError, match="one sampling rate"):
        ShuffledEcg(_rows(["a", "b", "c"], fs=(100, 500)), seed=0)
    with pytest.raises(ValueError, match="unknown control"):
        build_control("noise", rows, 0)


def test_zeros_hook_is_flat_and_keeps_shape():
    x = np.random.default_rng(1).normal(size=(12, 321)).astype(np.float32)
    out = ZerosEcg()(x, 100, "a")
    assert out.shape == x.shape and out.dtype == x.dtype and not out.any() and x.any()


@pytest.fixture(scope="module")
def tiny_model(prepared_100hz):
    from meit.training.setup import build_model

    recipe = load_recipe(None, [f"data.path={prepared_100hz}", *TINY])
    return recipe, build_model(recipe)


def test_controls_act_on_the_evaluated_subset_before_the_transform(tiny_model):
    """Item i of the shuffled dataset is item derangement[i] of the real one (same subset, same
    transform); the zeros dataset feeds zeros through the encoder's transform."""
    from meit.data.dataset import evaluation_instruction
    from meit.training.setup import build_split_dataset

    recipe, model = tiny_model

    def dataset(hook):
        return build_split_dataset(recipe, model, "test", 6, with_report=False,
                                   fixed_instruction=evaluation_instruction(), perturb=hook)

    real = dataset(None)
    shuffled_hook = build_control("shuffled", real.split, 11)
    shuffled, zeros = dataset(shuffled_hook), dataset(build_control("zeros", real.split, 11))
    assert len(shuffled) == len(real) == 6
    for i in range(len(real)):
        j = int(shuffled_hook.partner[i])
        mine, theirs = real[i], real[j]
        got = shuffled[i]
        assert got["id"] == mine["id"] and got["report"] == mine["report"]  # scored against its own report
        assert torch_equal(got["ecg"], theirs["ecg"]) and not torch_equal(got["ecg"], mine["ecg"])
        assert list(got["input_ids"]) == list(mine["input_ids"])
        assert not zeros[i]["ecg"].any() and zeros[i]["ecg"].shape == mine["ecg"].shape


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())


# --- metrics -----------------------------------------------------------------------------------------------------

def test_distinct_reports_and_grounding_drops():
    assert report_diversity(["a", "a", "b", "a"]) == {"distinct_reports": 0.5, "n_distinct_reports": 2}
    assert report_diversity([]) == {"distinct_reports": 0.0, "n_distinct_reports": 0}
    real = {"clinical_micro_f1": 0.75, "clinical_macro_f1": 0.5, "meteor": 0.25}
    control = {"clinical_micro_f1": 0.5, "clinical_macro_f1": 0.5}
    assert grounding(real, control) == {"clinical_micro_f1_drop": 0.25, "clinical_macro_f1_drop": 0.0,
                                        "meteor_drop": None}


def test_eval_config_controls_are_validated():
    assert load_recipe(None, ["eval.controls=shuffled"]).eval.controls == ["shuffled"]
    assert load_recipe(None, ["eval.controls=[zeros, shuffled, zeros]"]).eval.controls == ["zeros", "shuffled"]
    assert load_recipe(None, []).eval.controls == []
    with pytest.raises(ConfigError, match=r"eval\.controls"):
        load_recipe(None, ["eval.controls=[noise]"])
    with pytest.raises(ConfigError, match="max_samples_untrained"):
        load_recipe(None, ["eval.max_samples_untrained=0"])


@pytest.fixture(scope="module")
def artifact(prepared_100hz, tmp_path_factory):
    from meit.training import train

    out = tmp_path_factory.mktemp("controls_run")
    recipe = load_recipe(None, [f"data.path={prepared_100hz}", f"output_dir={out}", *TINY])
    return train(recipe, progress=False).final_dir


def test_eval_cli_with_controls_writes_controls_grounding_and_distinct(artifact, prepared_100hz, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", str(artifact), "--data", str(prepared_100hz), "--split", "test",
                 "--out", str(out), "--max-samples", "4", "--max-new-tokens", "6", "--no-meteor",
                 "--control", "shuffled", "--control", "zeros", "--seed", "5", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 < metrics["distinct_reports"] <= 1.0
    assert metrics["distinct_reports"] == metrics["n_distinct_reports"] / 4
    assert set(metrics["controls"]) == set(metrics["grounding"]) == {"shuffled", "zeros"}
    assert metrics["provenance"]["controls"] == ["shuffled", "zeros"]
    for name in ("shuffled", "zeros"):
        scores = metrics["controls"][name]
        assert {"bleu_4", "rouge_l", "clinical_micro_f1", "distinct_reports", "n_distinct_reports", "n"} <= set(scores)
        assert all(not isinstance(v, dict) for v in scores.values())
        drops = metrics["grounding"][name]
        assert drops["clinical_micro_f1_drop"] == pytest.approx(metrics["clinical_micro_f1"]
                                                                - scores["clinical_micro_f1"])
        assert drops["clinical_macro_f1_drop"] == pytest.approx(metrics["clinical_macro_f1"]
                                                                - scores["clinical_macro_f1"])
        assert drops["meteor_drop"] is None  # --no-meteor
        own = json.loads((out / "controls" / name / "metrics.json").read_text())
        assert own["provenance"]["control"] == name and own["provenance"]["control_seed"] == 5
    real = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    shuffled = [json.loads(line) for line in (out / "controls" / "shuffled" / "predictions.jsonl").read_text()
                .splitlines()]
    assert [r["id"] for r in shuffled] == [r["id"] for r in real]
    assert [r["reference"] for r in shuffled] == [r["reference"] for r in real]
    assert {r["ecg_from"] for r in shuffled} == {r["id"] for r in real}
    assert all(r["ecg_from"] != r["id"] for r in shuffled)
    zeros = (out / "controls" / "zeros" / "predictions.jsonl").read_text().splitlines()
    assert len(zeros) == 4
    printed = capsys.readouterr().out
    assert "control shuffled" in printed and "clinical_micro_f1_drop" in printed


def test_shuffled_control_on_one_record_is_skipped_and_recorded(artifact, prepared_100hz, tmp_path):
    out = tmp_path / "one"
    assert main(["eval", "--checkpoint", str(artifact), "--data", str(prepared_100hz), "--out", str(out),
                 "--max-samples", "1", "--max-new-tokens", "3", "--no-meteor", "--control", "shuffled",
                 "--control", "zeros", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "at least 2" in metrics["controls"]["shuffled"]["skipped"]
    assert set(metrics["grounding"]) == {"zeros"} and metrics["distinct_reports"] == 1.0
    assert not (out / "controls" / "shuffled").exists()


def test_eval_without_controls_keeps_its_layout(artifact, prepared_100hz, tmp_path):
    out = tmp_path / "plain"
    assert main(["eval", "--checkpoint", str(artifact), "--data", str(prepared_100hz), "--out", str(out),
                 "--max-samples", "2", "--max-new-tokens", "3", "--no-meteor", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "controls" not in metrics and "grounding" not in metrics and "distinct_reports" in metrics
    assert not (out / "controls").exists()


# --- bench -------------------------------------------------------------------------------------------------------

def _suite(tmp_path, out):
    from meit.bench.suite import load_suite

    file = tmp_path / "suite.yaml"
    file.write_text(f"""
name: demo
base_recipe: recipes/quickstart.yaml
output_dir: {out}
data_path: {tmp_path / 'data'}
overrides: ["eval.controls=[shuffled, zeros]"]
backbones:
  - name: tiny-gpt2
  - name: tiny-llama
""")
    return load_suite(file)


def test_bench_collects_and_tabulates_grounding_columns(tmp_path):
    from meit.bench.runner import collect, emit_jobs

    out = tmp_path / "bench"
    suite, suite_dir = _suite(tmp_path, out)
    scripts = emit_jobs(suite, suite_dir, "accelerate launch")
    assert "eval --recipe" in scripts[0].read_text()  # the job's eval takes the controls from its recipe
    assert load_recipe(out / "jobs" / "tiny-gpt2.yaml").eval.controls == ["shuffled", "zeros"]
    metrics = {"bleu_4": 0.25, "rouge_l": 0.5, "clinical_micro_f1": 0.6, "distinct_reports": 0.75,
               "controls": {"shuffled": {"bleu_4": 0.2, "distinct_reports": 0.5},
                            "zeros": {"bleu_4": 0.1, "distinct_reports": 0.25}},
               "grounding": {"shuffled": {"clinical_micro_f1_drop": 0.125, "clinical_macro_f1_drop": 0.0625,
                                          "meteor_drop": None},
                             "zeros": {"clinical_micro_f1_drop": 0.5, "clinical_macro_f1_drop": 0.25,
                                       "meteor_drop": None}}}
    (out / "tiny-gpt2" / "eval").mkdir(parents=True)
    (out / "tiny-gpt2" / "eval" / "metrics.json").write_text(json.dumps(metrics))
    rows = collect(suite)
    assert rows[0]["shuffled_clinical_micro_f1_drop"] == 0.125 and rows[0]["zeros_distinct_reports"] == 0.25
    with open(out / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["shuffled_clinical_macro_f1_drop"] == "0.0625" and table[0]["distinct_reports"] == "0.75"
    md = (out / "results.md").read_text()
    assert "| distinct | Δ micro-F1 (shuffled) | Δ micro-F1 (zeros) |" in md
    assert "| 0.7500 | 0.1250 | 0.5000 |" in md
    assert (out / "figures" / "grounding_by_backbone.png").stat().st_size > 5000


def test_bench_tables_without_controls_are_unchanged(tmp_path):
    from meit.bench.runner import collect

    out = tmp_path / "bench"
    suite, _ = _suite(tmp_path, out)
    (out / "tiny-gpt2" / "eval").mkdir(parents=True)
    (out / "tiny-gpt2" / "eval" / "metrics.json").write_text('{"bleu_4": 0.25, "rouge_l": 0.5}')
    collect(suite)
    md = (out / "results.md").read_text()
    assert "| backbone | status | BLEU-4 | ROUGE-L | seconds |" in md and "Δ" not in md and "distinct" not in md
    assert not (out / "figures" / "grounding_by_backbone.png").exists()
