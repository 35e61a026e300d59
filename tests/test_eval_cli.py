"""`meit eval` (with robustness), `meit generate` and zero-shot cross-dataset evaluation on a tiny artifact."""

import json

import numpy as np
import pytest

from meit.cli import main
from meit.config import load_recipe
from meit.training import train

TINY = ["model.llm=tiny-gpt2", "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8",
        "model.max_length=96", "train.batch_size=4", "train.max_steps=3", "train.trackers=[]", "data.fs=100"]


@pytest.fixture(scope="module")
def artifact(prepared_100hz, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_cli_run")
    recipe = load_recipe(None, [f"data.path={prepared_100hz}", f"output_dir={out}", *TINY])
    return train(recipe, progress=False).final_dir


def test_eval_cli_writes_metrics_predictions_and_robustness(artifact, prepared_100hz, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["eval", "--checkpoint", str(artifact), "--data", str(prepared_100hz), "--split", "test",
                 "--out", str(out), "--max-samples", "4", "--max-new-tokens", "6", "--no-meteor",
                 "--perturb", "dropout:12", "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"bleu_1", "bleu_4", "rouge_l", "cider_d", "provenance"} <= set(metrics)
    assert metrics["provenance"]["checkpoint"] == str(artifact)
    assert 0.0 <= metrics["clinical_micro_f1"] <= 1.0 and "per_finding" in metrics["clinical"]
    assert metrics["clinical"]["n_references_without_findings"] == 0  # synthetic English references are read
    assert sum(metrics["clinical"]["reference_languages"].values()) == 4
    assert main(["score", "--predictions", str(out / "predictions.jsonl"), "--out", str(tmp_path / "s.json"),
                 "--no-meteor"]) == 0  # an external system scored by `meit score` gets the same numbers
    scored = json.loads((tmp_path / "s.json").read_text())
    assert {k: v for k, v in scored.items() if isinstance(v, float)} == {
        k: v for k, v in metrics.items() if isinstance(v, float)}
    table = (out / "robustness.md").read_text()
    assert "| clean |" in table and "| dropout | 12 |" in table
    assert len((out / "robustness" / "dropout@12" / "predictions.jsonl").read_text().splitlines()) == 4


def test_zero_shot_cross_dataset_evaluation(artifact, synthetic_raw, tmp_path):
    """A model trained on the 100 Hz preparation evaluates on a 500 Hz preparation (resampled at load)."""
    from data_prep.ptbxl import prepare_ptbxl

    other = tmp_path / "ptbxl500"
    prepare_ptbxl(synthetic_raw, other, source="records500", report="original", workers=1, seed=0)
    code = main(["eval", "--checkpoint", str(artifact), "--data", str(other), "--split", "validation",
                 "--out", str(tmp_path / "zs"), "--max-samples", "3", "--max-new-tokens", "4", "--no-meteor",
                 "--no-progress"])
    assert code == 0
    provenance = json.loads((tmp_path / "zs" / "metrics.json").read_text())["provenance"]
    assert provenance["data"] == str(other) and provenance["split"] == "validation"


def test_generate_for_wfdb_record_and_npy(artifact, synthetic_raw, tmp_path, capsys):
    import wfdb

    record = sorted((synthetic_raw / "records100").rglob("*.hea"))[0].with_suffix("")
    assert main(["generate", "--checkpoint", str(artifact), "--ecg", str(record), "--max-new-tokens", "5"]) == 0
    first = capsys.readouterr().out.strip()
    signal = wfdb.rdrecord(str(record)).p_signal.T.astype(np.float32)
    np.save(tmp_path / "x.npy", signal)
    assert main(["generate", "--checkpoint", str(artifact), "--ecg", str(tmp_path / "x.npy"), "--fs", "100",
                 "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.strip() == first
    assert main(["generate", "--checkpoint", str(artifact), "--ecg", str(tmp_path / "x.npy")]) == 3
    assert "--fs" in capsys.readouterr().err


def test_export_with_merged_lora_gives_the_same_reports(artifact, synthetic_raw, tmp_path, capsys):
    record = sorted((synthetic_raw / "records100").rglob("*.hea"))[1].with_suffix("")
    assert main(["generate", "--checkpoint", str(artifact), "--ecg", str(record), "--max-new-tokens", "6"]) == 0
    before = capsys.readouterr().out.strip()
    merged = tmp_path / "merged"
    assert main(["export", "--checkpoint", str(artifact), "--out", str(merged), "--merge-lora"]) == 0
    assert not (merged / "adapter").exists() and (merged / "meit_model.json").is_file()
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(merged), "--ecg", str(record), "--max-new-tokens", "6"]) == 0
    assert capsys.readouterr().out.strip() == before


def test_generate_reads_records_as_prep_does(artifact, synthetic_raw, tmp_path, capsys):
    """Leads matched by name in any order, through the reader `meit prep` uses (which also converts µV to mV;
    that conversion is checked in the prep tests — under the z-score transform it cannot change the output)."""
    import wfdb

    record = sorted((synthetic_raw / "records100").rglob("*.hea"))[2].with_suffix("")
    canonical = wfdb.rdrecord(str(record))
    np.save(tmp_path / "mv.npy", canonical.p_signal.T.astype(np.float32))
    order = [0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11]  # aVF before aVL, as in MIMIC-IV-ECG
    wfdb.wrsamp("shuffled", fs=100, units=["uV"] * 12, sig_name=[canonical.sig_name[i] for i in order],
                p_signal=canonical.p_signal[:, order] * 1000.0, fmt=["32"] * 12, adc_gain=[1.0] * 12,
                baseline=[0] * 12, write_dir=str(tmp_path))
    assert main(["generate", "--checkpoint", str(artifact), "--ecg", str(tmp_path / "mv.npy"), "--fs", "100",
                 "--max-new-tokens", "6"]) == 0
    expected = capsys.readouterr().out.strip()
    assert main(["generate", "--checkpoint", str(artifact), "--ecg", str(tmp_path / "shuffled"),
                 "--max-new-tokens", "6"]) == 0
    assert capsys.readouterr().out.strip() == expected
