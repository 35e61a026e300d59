"""`meit bench` in sequence on a two-backbone suite: synthesises data, trains, evaluates, tabulates."""

import csv
import json

from meit.cli import main


def test_bench_runs_a_small_suite_end_to_end(tmp_path, prepared_100hz, capsys):
    out = tmp_path / "bench"
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""
name: mini
base_recipe: recipes/quickstart.yaml
output_dir: {out}
data_path: {prepared_100hz}
reference: eval/meit_published.csv
reference_dataset: ptb-xl
perturb: ["dropout:12"]
overrides: [model.encoder=resnet1d-tiny, model.lora.r=4, model.lora.alpha=8, train.max_steps=2,
            train.encoder_stage.max_steps=2, train.encoder_stage.batch_size=4,
            train.batch_size=4, train.save_every=null, eval.max_samples=3, eval.max_new_tokens=4, eval.meteor=false,
            "eval.controls=[shuffled]"]
backbones:
  - name: tiny-opt
  - name: tiny-qwen3
    overrides: [model.fusion=prefix, model.projector=linear]
  - name: tiny-opt-seed2
    repeat_of: tiny-opt
    overrides: [model.llm=tiny-opt, seed=43]
  - name: broken
    overrides: [model.llm=tiny-nonexistent]
""")
    code = main(["bench", str(suite), "--no-progress"])
    assert code == 1  # one backbone failed; the others still ran and were recorded
    with open(out / "results.csv") as handle:
        rows = {r["backbone"]: r for r in csv.DictReader(handle)}
    assert rows["tiny-opt"]["status"] == "ok" and float(rows["tiny-opt"]["bleu_4"]) >= 0
    assert rows["tiny-qwen3"]["status"] == "ok"
    assert float(rows["tiny-opt"]["shuffled_clinical_micro_f1_drop"]) == float(
        rows["tiny-opt"]["clinical_micro_f1"]) - json.loads(
        (out / "tiny-opt" / "eval" / "controls" / "shuffled" / "metrics.json").read_text())["clinical_micro_f1"]
    assert 0 < float(rows["tiny-opt"]["distinct_reports"]) <= 1
    assert rows["broken"]["status"] == "failed" and "tiny-nonexistent" in rows["broken"]["error"]
    table = (out / "results.md").read_text()
    assert "| tiny-opt | ok |" in table and "Published reference" in table and "llama-2-7b" in table
    assert "| distinct | Δ micro-F1 (shuffled) |" in table
    # the control's own scores, the costs, and the seed-to-seed spread every other gap is compared with
    opt = rows["tiny-opt"]
    assert float(opt["shuffled_clinical_micro_f1"]) == float(opt["clinical_micro_f1"]) - float(
        opt["shuffled_clinical_micro_f1_drop"])
    card = json.loads((out / "tiny-opt" / "final" / "model_card.json").read_text())["model"]["parameters"]
    assert int(opt["total_params"]) == card["total"] > int(opt["trainable_params"]) == card["trainable"] > 0
    assert card["trainable"] < card["by_part"]["encoder"] + card["by_part"]["projector"] + card["by_part"]["lora"]
    assert float(opt["seconds_per_step"]) > 0 and float(opt["peak_train_mb"]) > 100 and float(opt["reports_per_s"]) > 0
    assert "| micro-F1 (shuffled) | macro-F1 (shuffled) |" in table and "| s/step | peak MB |" in table
    assert rows["tiny-opt-seed2"]["repeat_of"] == "tiny-opt"
    assert "Seed-to-seed spread" in table and "Differences larger than that spread" in table
    assert (out / "figures" / "metrics_by_backbone.png").is_file()
    assert (out / "figures" / "grounding_by_backbone.png").is_file()
    with open(out / "robustness.csv") as handle:
        sweep = list(csv.DictReader(handle))
    assert {(r["backbone"], r["perturbation"]) for r in sweep} >= {("tiny-opt", "clean"), ("tiny-opt", "dropout")}
    assert (out / "figures" / "robustness_rouge_l.png").stat().st_size > 5000
    assert "bench: mini" in capsys.readouterr().out

    # re-running one row (--only) keeps every other row of the earlier run, in the suite's order
    before = rows
    code = main(["bench", str(suite), "--only", "tiny-qwen3", "--no-progress"])
    assert code == 0
    with open(out / "results.csv") as handle:
        after = list(csv.DictReader(handle))
    assert [r["backbone"] for r in after] == ["tiny-opt", "tiny-qwen3", "tiny-opt-seed2", "broken"]
    after = {r["backbone"]: r for r in after}
    for name in ("tiny-opt", "tiny-opt-seed2"):
        for key in ("bleu_4", "clinical_micro_f1", "shuffled_clinical_micro_f1", "seconds_per_step", "total_params"):
            assert float(after[name][key]) == float(before[name][key]), (name, key)
    assert after["tiny-opt-seed2"]["repeat_of"] == "tiny-opt" and after["broken"]["status"] == "failed"
    assert after["tiny-qwen3"]["status"] == "ok"
    table = (out / "results.md").read_text()
    assert "| tiny-opt | ok |" in table and "Seed-to-seed spread" in table
    with open(out / "robustness.csv") as handle:
        assert {(r["backbone"], r["perturbation"]) for r in csv.DictReader(handle)} >= {
            ("tiny-opt", "clean"), ("tiny-qwen3", "dropout")}
