"""Suite validation, result tables and plots (no training here; the CPU suite runs in test_bench_cpu)."""

import csv
from pathlib import Path

import numpy as np
import pytest

from meit.bench.runner import Kept, collect, emit_jobs, read_rows
from meit.bench.suite import load_suite
from meit.config import load_recipe
from meit.errors import ConfigError
from meit.evaluation.perturb import parse_perturbations
from meit.evaluation.report import metrics_table, plot_ecg_with_reports


def _suite(tmp_path, body):
    file = tmp_path / "suite.yaml"
    file.write_text(body)
    return file


def test_suite_validation_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_suite(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="backbones"):
        load_suite(_suite(tmp_path, "name: x\nbase_recipe: recipes/quickstart.yaml\ndata_path: d\n"))
    with pytest.raises(ConfigError, match=r"data_path .* or synth"):
        load_suite(_suite(tmp_path, "name: x\nbase_recipe: r.yaml\nbackbones: [{name: tiny-gpt2}]\n"))
    with pytest.raises(ConfigError, match="repeat"):
        load_suite(_suite(tmp_path, "name: x\nbase_recipe: r.yaml\ndata_path: d\n"
                                    "backbones: [{name: tiny-gpt2}, {name: tiny-gpt2}]\n"))
    with pytest.raises(ConfigError, match=r"backbones\[0\] \(a\): repeat_of='b' must name an earlier entry"):
        load_suite(_suite(tmp_path, "name: x\nbase_recipe: r.yaml\ndata_path: d\n"
                                    "backbones: [{name: a, repeat_of: b}, {name: b}]\n"))


def test_the_seed_spread_decides_which_differences_are_reported():
    from meit.bench.tables import seed_spread, spread_lines

    rows = [{"backbone": "a", "status": "ok", "meteor": 0.30, "clinical_micro_f1": 0.70},
            {"backbone": "a2", "status": "ok", "repeat_of": "a", "meteor": 0.32, "clinical_micro_f1": 0.66},
            {"backbone": "b", "status": "ok", "meteor": 0.31, "clinical_micro_f1": 0.50},
            {"backbone": "c", "status": "failed"}]
    spread = seed_spread(rows)
    assert spread == pytest.approx({"meteor": 0.02, "clinical_micro_f1": 0.04})
    text = "\n".join(spread_lines(rows))
    assert "- a − b: clinical_micro_f1 +0.2000" in text and "meteor +" not in text  # 0.01 < 0.02: within spread
    assert spread_lines(rows[:1] + rows[2:]) == []  # no repeat, no spread claimed


def test_peak_rss_sees_memory_that_was_freed_before_the_block_ended():
    from meit.bench.memory import PeakRss

    with PeakRss(interval=0.01) as before:
        pass
    with PeakRss(interval=0.01) as peak:
        block = np.ones(64 * 2**20 // 8)  # 64 MB, touched
        import time

        time.sleep(0.1)
        del block
    assert peak.megabytes >= before.megabytes + 50


def test_an_emitted_job_evaluates_exactly_as_the_suite_runs(tmp_path):
    """The job's `meit eval` line, parsed by the real CLI, yields the training recipe's eval section."""
    import shlex

    from meit.cli import build_parser
    from meit.cli.eval_cmd import eval_recipe

    out = tmp_path / "bench"
    suite, suite_dir = load_suite(_suite(tmp_path, f"""
name: demo
base_recipe: recipes/quickstart.yaml
output_dir: {out}
data_path: {tmp_path / 'data'}
overrides: [train.max_steps=2, eval.max_new_tokens=77, eval.num_beams=2]
perturb: [gaussian, "dropout:1,3"]
backbones:
  - name: tiny-gpt2
"""))
    script = emit_jobs(suite, suite_dir, "accelerate launch")[0]
    line = next(row for row in script.read_text().splitlines() if " eval " in row)
    args = build_parser().parse_args(shlex.split(line)[3:])  # after `python -m meit.cli`
    recipe, specs = eval_recipe(args)
    trained = load_recipe(out / "jobs" / "tiny-gpt2.yaml")
    assert recipe.eval == trained.eval and recipe.seed == trained.seed
    assert (recipe.eval.max_new_tokens, recipe.eval.num_beams) == (77, 2)
    assert [(s.name, s.level) for s in specs] == [(s.name, s.level) for s in parse_perturbations(
        suite.perturb, seed=trained.seed)]


def test_emit_writes_one_job_per_backbone_and_collect_reads_results(tmp_path):
    out = tmp_path / "bench"
    suite, suite_dir = load_suite(_suite(tmp_path, f"""
name: demo
base_recipe: recipes/quickstart.yaml
output_dir: {out}
data_path: {tmp_path / 'data'}
overrides: [train.max_steps=2]
backbones:
  - name: tiny-gpt2
  - name: tiny-llama
    overrides: [model.fusion=prefix]
"""))
    scripts = emit_jobs(suite, suite_dir, "accelerate launch")
    assert [s.name for s in scripts] == ["tiny-gpt2.sh", "tiny-llama.sh"]
    text = scripts[1].read_text()
    assert "accelerate launch -m meit.cli train" in text and "meit.cli eval" in text
    assert "fusion: prefix" in (out / "jobs" / "tiny-llama.yaml").read_text()
    (out / "tiny-gpt2" / "eval").mkdir(parents=True)
    (out / "tiny-gpt2" / "eval" / "metrics.json").write_text('{"bleu_4": 0.25, "rouge_l": 0.5}')
    (out / "tiny-gpt2" / "eval" / "robustness.csv").write_text(
        "perturbation,level,rouge_l\nclean,0.0,0.5\ngaussian,0.05,0.25\n")
    rows = collect(suite)
    assert rows[0]["status"] == "ok" and rows[1]["status"] == "missing"
    with open(out / "robustness.csv") as handle:  # the emitted jobs' robustness sweeps are collected too
        assert [r["backbone"] for r in csv.DictReader(handle)] == ["tiny-gpt2", "tiny-gpt2"]
    assert (out / "figures" / "robustness_rouge_l.png").is_file()
    with open(out / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["bleu_4"] == "0.25"
    assert "| tiny-gpt2 | ok |" in (out / "results.md").read_text()
    assert (out / "figures" / "metrics_by_backbone.png").stat().st_size > 1000


def test_metrics_table_and_figure(tmp_path):
    table = metrics_table({"a": {"bleu_4": 0.5, "cider_d": 1.25}, "b": {"bleu_4": 0.1}})
    assert table.splitlines()[0] == "| model | bleu_4 | cider_d |"
    assert "| b | 0.1000 | – |" in table
    signal = np.sin(np.linspace(0, 20, 1000))[None].repeat(12, 0)
    path = plot_ecg_with_reports(signal, 100, "sinus rhythm.", "sinus rhythm.", tmp_path / "f.png")
    assert path.stat().st_size > 10_000


SUITES = sorted((__import__("pathlib").Path(__file__).resolve().parents[1] / "eval" / "suites").glob("*.yaml"))


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_shipped_suites_validate_and_name_registered_backbones(path, tmp_path):
    from meit.bench.runner import entry_recipe
    from meit.models.backbones import resolve_backbone

    suite, suite_dir = load_suite(path)
    for entry in suite.backbones:
        recipe = entry_recipe(suite, entry, suite_dir, tmp_path)
        if recipe.model.is_encdec:  # the non-LLM baseline: a model of its own, not a backbone
            continue
        assert resolve_backbone(recipe.model.llm).name == recipe.model.llm


def test_an_entry_may_bring_its_own_base_recipe_and_still_gets_the_suite_overrides(tmp_path):
    from meit.bench.runner import entry_recipe

    own = tmp_path / "own.yaml"
    own.write_text(Path("recipes/quickstart.yaml").read_text().replace("seed: 42", "seed: 7"))
    suite, suite_dir = load_suite(_suite(tmp_path, f"""
name: demo
base_recipe: recipes/quickstart.yaml
data_path: {tmp_path / 'data'}
overrides: [train.max_steps=3]
backbones:
  - name: tiny-gpt2
  - name: mine
    base_recipe: {own}
    overrides: [model.llm=tiny-opt]
"""))
    shared, mine = (entry_recipe(suite, e, suite_dir, tmp_path / "data") for e in suite.backbones)
    assert (shared.seed, mine.seed) == (42, 7)
    assert shared.train.max_steps == mine.train.max_steps == 3 and mine.model.llm == "tiny-opt"


def test_a_partial_rerun_replaces_rows_by_name_and_loses_nothing_when_it_stops_early(tmp_path):
    """``--only A B`` dying after A: B's earlier row stays; names that look like numbers stay names."""
    out = tmp_path / "bench"
    suite, _ = load_suite(_suite(tmp_path, f"""
name: demo
base_recipe: recipes/quickstart.yaml
output_dir: {out}
data_path: {tmp_path / 'data'}
backbones:
  - name: "2024"
  - name: "007"
    repeat_of: "2024"
  - name: tiny-llama
"""))
    out.mkdir()
    (out / "results.csv").write_text(
        "backbone,status,bleu_4,repeat_of,error\n2024,ok,0.1,,\n007,ok,0.2,2024,\ntiny-llama,failed,,,ValueError: 3\n")
    (out / "robustness.csv").write_text("backbone,perturbation,level,rouge_l\n2024,clean,0,0.5\n007,clean,0,0.4\n")
    earlier = read_rows(out / "results.csv")
    assert [r["backbone"] for r in earlier] == ["2024", "007", "tiny-llama"]
    assert earlier[1]["repeat_of"] == "2024" and earlier[2]["error"] == "ValueError: 3" and earlier[0]["bleu_4"] == 0.1
    kept = Kept.read(suite)
    # the re-run of 007 and tiny-llama got as far as tiny-llama
    rows, robustness = kept.merge([{"backbone": "tiny-llama", "status": "ok", "bleu_4": 0.3}], [])
    assert [(r["backbone"], r["status"]) for r in rows] == [("2024", "ok"), ("007", "ok"), ("tiny-llama", "ok")]
    assert rows[1]["bleu_4"] == 0.2 and [r["backbone"] for r in robustness] == ["2024", "007"]
    # then 007 arrives with its sweep: its earlier row and sweep are replaced, in the suite's order
    rows, robustness = kept.merge([{"backbone": "tiny-llama", "status": "ok"}, {"backbone": "007", "status": "ok",
                                   "bleu_4": 0.25}], [{"backbone": "007", "perturbation": "clean", "rouge_l": 0.45}])
    assert [r["backbone"] for r in rows] == ["2024", "007", "tiny-llama"] and rows[1]["bleu_4"] == 0.25
    assert [(r["backbone"], r["rouge_l"]) for r in robustness] == [("2024", 0.5), ("007", 0.45)]
