"""`meit quickstart` end to end with a tiny backbone (the real SmolLM2 run is measured in the docs)."""

import json

from meit.cli import main


def test_quickstart_writes_metrics_predictions_report_and_model(tmp_path, capsys):
    out = tmp_path / "qs"
    code = main(["quickstart", "--out", str(out), "--n", "40", "--workers", "1", "--no-progress",
                 "model.llm=tiny-llama", "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8",
                 "train.max_steps=4", "train.save_every=2", "train.encoder_stage.max_steps=3",
                 "train.encoder_stage.batch_size=4", "eval.controls=[shuffled, zeros]", "eval.max_samples=3",
                 "eval.max_new_tokens=6", "eval.meteor=false", "eval.max_samples_untrained=2"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"):
        assert key in metrics["trained"] and key in metrics["untrained"] and key in metrics
    assert metrics["train"]["steps"] == 4
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 3
    assert metrics["trained"]["n"] == 3 and metrics["untrained"]["n"] == 2  # eval.max_samples_untrained
    assert len((out / "untrained" / "predictions.jsonl").read_text().splitlines()) == 2
    assert set(metrics["controls"]) == set(metrics["grounding"]) == {"shuffled", "zeros"}
    assert metrics["controls"]["shuffled"]["n"] == 3 and "distinct_reports" in metrics["trained"]
    assert set(metrics["grounding"]["zeros"]) == {"clinical_micro_f1_drop", "clinical_macro_f1_drop", "meteor_drop"}
    for name in ("shuffled", "zeros"):
        assert len((out / "controls" / name / "predictions.jsonl").read_text().splitlines()) == 3
    report = (out / "report.md").read_text()
    assert "| untrained (0 steps) |" in report and "| trained |" in report
    assert "| trained · shuffled ECG |" in report and "| trained · zeros ECG |" in report
    assert "Grounding (real minus control)" in report and "for 3 records (share" in report
    assert (out / "figures" / "example_ecg.png").stat().st_size > 10_000
    assert (out / "train" / "final" / "meit_model.json").is_file()
    # its model card holds the trained model's evaluation beside both controls (docs/model_cards.md)
    (entry,) = json.loads((out / "train" / "final" / "model_card.json").read_text())["evaluations"].values()
    assert entry["metrics"]["bleu_4"] == metrics["trained"]["bleu_4"]
    assert set(entry["controls"]) == {"shuffled", "zeros"}
    assert "train/final/MODEL_CARD.md" in report
    assert (out / "train" / "encoder_stage" / "final" / "finding_head.safetensors").is_file()
    # the encoder alone, on the same records' report findings, beside its shuffled control
    assert metrics["encoder_findings"]["records"] == 3 and "shuffled_macro_auroc" in metrics["encoder_findings"]
    encoder = json.loads((out / "encoder" / "metrics.json").read_text())
    assert encoder["scored"] == "report-model encoder + findings head"
    assert "The encoder alone (its findings head, without the LLM) reads the findings of these 3 records" in report
    assert "| finding | support | F1 trained | F1 shuffled ECG |" in report
    # the shipped recipe verifies the trained model's statements against the waveform (eval.verify)
    assert metrics["verification"]["n_records"] == 3 and "Trained model, verification:" in report
    assert f"results in {out}" in capsys.readouterr().out
