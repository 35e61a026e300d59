"""The benchmark commands run and print their figures (tiny settings; real figures are in the docs)."""

import json

from meit.bench import generation, loader


def test_loader_benchmark_prints_throughput(prepared_100hz, tmp_path, capsys):
    out = tmp_path / "loader.json"
    assert loader.main(["--data", str(prepared_100hz), "--fs", "100", "--llm", "tiny-llama", "--workers", "0", "2",
                        "--batch-size", "4", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["workers"] for r in rows] == [0, 2]
    assert all(r["samples"] == rows[0]["samples"] > 0 and r["samples_per_s"] > 0 for r in rows)
    assert "samples/s" in capsys.readouterr().out


def test_generation_benchmark_prints_reports_per_second(tmp_path, capsys):
    out = tmp_path / "gen.json"
    assert generation.main(["--llm", "tiny-llama", "--batch-sizes", "1", "2", "--reports", "2", "--new-tokens", "3",
                            "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["batch_size"] for r in rows] == [1, 2] and all(r["reports"] == 2 for r in rows)
    assert "reports/s" in capsys.readouterr().out


def test_scaling_benchmark_runs_one_and_two_processes(prepared_100hz, tmp_path, capsys):
    from meit.bench import scaling

    out = tmp_path / "scaling.json"
    assert scaling.main(["--data", str(prepared_100hz), "--steps", "3", "--json", str(out), "model.llm=tiny-llama",
                         "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8"]) == 0
    rows = json.loads(out.read_text())
    assert [r["processes"] for r in rows] == [1, 2]
    assert all(r["steps"] == 3 and r["seconds_per_step"] > 0 and r["peak_rss_gb"] > 0 for r in rows)
    assert rows[1]["scaling_efficiency"] > 0
    assert "efficiency" in capsys.readouterr().out


def test_grounding_benchmark_writes_curve_findings_and_controls(prepared_100hz, tmp_path, capsys):
    from meit.bench import grounding

    out = tmp_path / "grounding"
    assert grounding.main(["--data", str(prepared_100hz), "--out", str(out), "--steps", "4", "--encoder-steps", "3",
                           "--eval-every", "2", "--val-samples", "4", "--test-samples", "5",
                           "model.llm=tiny-llama", "model.encoder=resnet1d-tiny", "model.lora.r=4",
                           "model.lora.alpha=8", "train.encoder_stage.batch_size=4", "eval.max_new_tokens=6",
                           "eval.meteor=false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["step"] for r in summary["learning_curve"]] == [2, 4]
    assert {"val_findings_micro_f1", "val_findings_macro_f1", "val_distinct_reports"} <= set(
        summary["learning_curve"][0])
    assert set(summary["controls"]) == set(summary["grounding"]) == {"shuffled", "zeros"}
    assert summary["test"]["n"] == 5
    ceiling = summary["reference_ceiling"]  # synthetic data: reports re-drawn from the truth
    assert ceiling["n"] == 5 and 0.0 < ceiling["clinical_micro_f1"] <= 1.0
    assert (out / "learning_curve.png").stat().st_size > 5000 and (out / "per_finding.csv").is_file()
    printed = capsys.readouterr().out
    assert "macro-F1" in printed and "ceiling" in printed
