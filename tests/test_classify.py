"""`meit classify`: labels, bootstrap AUROC, one- and two-stage training, scoring, the artifact and the CLI."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from meit.classify.config import ClassifyRecipe
from meit.classify.labels import choose_label_names, record_label_sets, split_labels
from meit.classify.model import EcgClassifier
from meit.config import load_recipe
from meit.errors import ConfigError, DataError, ModelError
from meit.evaluation.ranking import auroc, bootstrap_auroc
from meit.findings_scp import SCP_SUPERCLASS, SUPERCLASSES, parse_scp_codes, scp_superclasses

REAL = Path(__file__).parent / "data" / "ptbxl_real"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def prepared_real(tmp_path_factory):
    from data_prep.ptbxl import prepare_ptbxl

    out = tmp_path_factory.mktemp("real") / "prepared"
    prepare_ptbxl(REAL, out, source="records100", report="original", workers=1, seed=0)
    return out


def _recipe(tmp_path: Path, data: Path, *overrides: str) -> ClassifyRecipe:
    return load_recipe(None, [f"data.path={data}", f"output_dir={tmp_path / 'run'}", "train.max_steps=2",
                              "train.batch_size=8", "ecg.encoder=resnet1d-tiny", "eval.bootstrap=30",
                              "train.log_every=1", *overrides], schema=ClassifyRecipe)


# --------------------------------------------------------------------------------------------- labels


def test_the_superclass_table_is_ptbxl_s_own():
    with (REAL / "scp_statements.csv").open() as f:
        rows = list(csv.DictReader(f))
    official = {row[""]: row["diagnostic_class"] for row in rows if row["diagnostic"] == "1.0"}
    assert official == SCP_SUPERCLASS
    assert set(official.values()) == set(SUPERCLASSES)
    assert scp_superclasses({"IMI": 50.0, "SR": 0.0, "LVH": 100.0}) == {"MI", "HYP"}
    assert scp_superclasses({"SR": 0.0, "AFIB": 0.0}) == frozenset()


def test_real_records_get_superclasses_and_the_rest_is_counted(prepared_real):
    from meit.data.dataset import load_split

    split = load_split(prepared_real, "train")
    labels = split_labels(split, "superclass", SUPERCLASSES)
    assert len(labels.rows) + sum(labels.skipped.values()) == len(split)
    first = int(labels.rows[0])
    expected = scp_superclasses(parse_scp_codes(split[first]["scp_codes"]))
    assert {SUPERCLASSES[j] for j in np.flatnonzero(labels.targets[0])} == expected
    assert labels.positives["NORM"] > 0


def test_finding_labels_are_chosen_on_training_records_and_reports_work_without_scp_codes(prepared_100hz):
    from meit.data.dataset import load_split

    split = load_split(prepared_100hz, "train")
    sets = record_label_sets(split, "scp-findings")
    names = choose_label_names(sets, "scp-findings", min_positives=3)
    assert "sinus_rhythm" in names and all(sum(n in s for s in sets if s) >= 3 for n in names)
    from_reports = record_label_sets(split.remove_columns(["scp_codes"]), "report-findings")
    assert sum("sinus_rhythm" in s for s in from_reports) > 0
    with pytest.raises(DataError, match=r"column 'scp_codes'.*data\.labels=report-findings"):
        record_label_sets(split.remove_columns(["scp_codes"]), "superclass", "my split")
    with pytest.raises(DataError, match=r"Lower data\.min_positives"):
        choose_label_names(sets, "scp-findings", min_positives=10_000)


# --------------------------------------------------------------------------------------------- AUROC


def test_bootstrap_auroc_agrees_with_scikit_learn_and_brackets_it():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(120, 3)).astype(float)
    labels[:, 2] = 0
    labels[:2, 2] = 1  # a rare class: many resamples have no positive
    scores = labels + rng.normal(0, 1.0, size=labels.shape)
    out = bootstrap_auroc(scores, labels, resamples=400, confidence=0.9, seed=1)
    for j in range(3):
        assert out["auroc"][j] == pytest.approx(auroc(scores[:, j], labels[:, j]))
        assert out["low"][j] <= out["auroc"][j] <= out["high"][j]
    assert out["kept"][0] == 400 and 0 < out["kept"][2] < 400
    assert out["macro"] == pytest.approx(np.mean(out["auroc"]))
    assert out["macro_low"] <= out["macro"] <= out["macro_high"]
    perfect = bootstrap_auroc(labels[:, :2], labels[:, :2], resamples=50)
    assert perfect["macro"] == 1.0 and perfect["macro_low"] == 1.0
    single = bootstrap_auroc(scores, np.concatenate([labels[:, :2], np.zeros((120, 1))], axis=1), resamples=20)
    assert single["scored"] == [True, True, False] and np.isnan(single["auroc"][2])
    assert single["macro"] == pytest.approx(np.mean(single["auroc"][:2]))
    # three records, one positive: most resamples have no positive at all; they leave the macro interval quietly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny = bootstrap_auroc(np.array([[0.9], [0.2], [0.1]]), np.array([[1.0], [0.0], [0.0]]), resamples=50, seed=0)
    assert tiny["macro"] == 1.0 and tiny["macro_low"] == 1.0 and 0 < tiny["kept"][0] < 50


# --------------------------------------------------------------------------------------------- training


def test_a_signal_classifier_trains_scores_and_reloads(tmp_path, prepared_100hz):
    from meit.classify.run import classify
    from meit.models.encoders import build_encoder, load_encoder_checkpoint

    recipe = _recipe(tmp_path, prepared_100hz, "data.labels=scp-findings", "data.min_positives=3",
                     "data.test_split=validation")
    run = classify(recipe, progress=False)
    out = Path(recipe.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["clean"]["records"] > 0 and "shuffled_ecg" in metrics["clean"]
    assert metrics["training"][0]["steps"] == 2 and metrics["training"][0]["head_kept_from_stage1"] is None
    assert "| **macro** |" in (out / "results.md").read_text()
    assert len(json.loads((out / "logs" / "train.jsonl").read_text().splitlines()[0])) > 0
    # the folder is a classifier and an encoder artifact
    model = EcgClassifier.from_pretrained(run.training.final_dir)
    assert model.labels == tuple(metrics["labels"])
    encoder = build_encoder("resnet1d-tiny", model.contract)
    load_encoder_checkpoint(encoder, run.training.final_dir)
    for a, b in zip(encoder.state_dict().values(), model.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    model.eval()
    x = torch.randn(2, *model.contract.input_shape)
    again = EcgClassifier.from_pretrained(run.training.final_dir).eval()
    assert torch.equal(model(x), again(x))


def test_two_stages_on_paper_images_carry_the_encoder_and_replace_the_head_when_labels_differ(tmp_path,
                                                                                              prepared_100hz):
    from meit.classify.engine import train_classifier

    image = ["ecg.encoder=resnet-toy-image", "ecg.image_mode=paper-3x4", "ecg.image_size=[64,96]",
             "ecg.normalisation=none", "ecg.image_denoise=grid+flatten", "ecg.image_augment={blur: 0.5}"]
    recipe = _recipe(tmp_path, prepared_100hz, *image, f"stage1.path={prepared_100hz}", "stage1.max_steps=1",
                     "stage1.labels=superclass", "data.labels=scp-findings", "data.min_positives=3")
    result = train_classifier(recipe, progress=False)
    first, second = result.stages
    assert first.labels == SUPERCLASSES and first.final_dir == Path(recipe.output_dir) / "stage1" / "final"
    assert second.head_kept is False and "sinus_rhythm" in second.labels
    stage1 = EcgClassifier.from_pretrained(first.final_dir)
    final = EcgClassifier.from_pretrained(second.final_dir)
    assert final.contract == stage1.contract and final.contract.image_denoise == "grid+flatten"
    # same labels in both stages: the head carries over
    same = _recipe(tmp_path / "same", prepared_100hz, *image, f"stage1.path={prepared_100hz}", "stage1.max_steps=1")
    assert train_classifier(same, progress=False).stages[1].head_kept is True


def test_a_real_ptbxl_superclass_classifier_skips_records_without_a_diagnosis(tmp_path, prepared_real):
    from meit.classify.run import classify

    recipe = _recipe(tmp_path, prepared_real, "data.test_split=train", "train.batch_size=4")
    metrics = classify(recipe, progress=False).metrics
    assert metrics["labels"] == list(SUPERCLASSES)
    counted = metrics["clean"]["records"] + sum(metrics["skipped"].values())
    from meit.data.dataset import load_split

    assert counted == len(load_split(prepared_real, "train"))


def test_bad_recipes_and_folders_are_refused(tmp_path, prepared_100hz):
    with pytest.raises(ConfigError, match=r"eval\.degrade\.wobble is not an augmentation"):
        _recipe(tmp_path, prepared_100hz, "eval.degrade={wobble: 0.5}")
    with pytest.raises(ConfigError, match=r"eval\.degrade makes paper pages look scanned"):
        _recipe(tmp_path, prepared_100hz, "eval.degrade={blur: 0.5}")
    with pytest.raises(ModelError, match="is not an ECG classifier"):
        EcgClassifier.from_pretrained(tmp_path)


# --------------------------------------------------------------------------------------------- CLI


def test_the_cli_trains_and_scores_with_degraded_pages(tmp_path, prepared_100hz, capsys):
    from meit.cli import main

    args = ["classify", "train", "recipes/classify_paper.yaml", f"data.path={prepared_100hz}",
            f"output_dir={tmp_path / 'cli'}", "train.max_steps=1", "train.batch_size=4", "ecg.encoder=resnet-toy-image",
            "ecg.image_size=[64,96]", "eval.bootstrap=10", "data.labels=scp-findings", "data.min_positives=3",
            "stage1.path=null", "data.test_split=validation", "--no-progress"]
    assert main(args) == 0
    assert "shuffled-ECG control" in capsys.readouterr().out
    model = str(tmp_path / "cli" / "final")
    assert main(["classify", "eval", model, "--data", str(prepared_100hz), "--split", "validation", "--bootstrap",
                 "10", "--degrade", "rotation=0.5", "--degrade", "shadow=1", "--out", str(tmp_path / "scores"),
                 "--no-progress"]) == 0
    scores = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert scores["degraded"]["augmentations"] == {"rotation": 0.5, "shadow": 1.0}
    assert main(["classify", "eval", model, "--data", str(prepared_100hz), "--degrade", "wobble=1"]) == 2
    assert "NAME=STRENGTH" in capsys.readouterr().err


def test_the_benchmark_runs_its_rows_and_writes_the_table(tmp_path, prepared_100hz, prepared_real):
    from meit.bench.classify import main

    assert main(["--synth", str(prepared_100hz), "--real", str(prepared_real), "--out", str(tmp_path / "bench"),
                 "--steps", "1", "--batch-size", "4", "--image-size", "[64,96]", "--bootstrap", "10",
                 "--signal-encoder", "resnet1d-tiny", "--image-encoder", "resnet-toy-image", "--only", "1", "5", "8",
                 "--test-split", "train", "--no-progress"]) == 0
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [r["row"] for r in results] == [
        "signal (resnet1d-tiny)", "paper (resnet-toy-image), augmentation 0.5 + denoising",
        "paper (resnet-toy-image), aug 0.5 + denoising, synth → real (two stages)"]
    assert len(results[2]["metrics"]["training"]) == 2  # the two-stage row ran both stages
    text = (tmp_path / "bench" / "results.md").read_text()
    assert text.count("\n| synth") == 2 and text.count("\n| real") == 1


# --------------------------------------------------------------------------------------------- report models


@pytest.mark.parametrize("overrides", [
    # kv: one pooled ConvNeXt vector (its pooler LayerNorms the mean, unlike the mean of its LayerNormed tokens)
    {"llm": "tiny-llama", "encoder": "convnext-toy-image", "image_mode": "paper-3x4", "image_size": (64, 96),
     "normalisation": "none", "fusion": "kv"},
    # prefix with 4 tokens: the head reads the mean of the time tokens
    {"llm": "tiny-llama", "encoder": "resnet1d-tiny", "fusion": "prefix", "num_ecg_tokens": 4},
    # the encdec baseline
    {"llm": "encdec-lstm", "encoder": "resnet1d-tiny"},
], ids=["kv-image", "prefix-signal", "encdec"])
def test_a_report_model_s_encoder_is_scored_on_the_features_its_head_learnt(tmp_path, prepared_100hz, overrides,
                                                                            capsys):
    from meit.classify.model import ReportModelFindings, load_classifier
    from meit.cli import main
    from meit.config import ModelConfig
    from meit.data.dataset import load_split
    from meit.models import MeitModel

    cfg = ModelConfig(finding_head=True, **overrides)
    reports = list(load_split(prepared_100hz, "train")["report"])
    torch.manual_seed(0)
    model = MeitModel.build(cfg, data_fs=100, data_seconds=10, train_reports=reports).eval()
    model.save_pretrained(tmp_path / "report_model")
    reader = load_classifier(tmp_path / "report_model")
    assert isinstance(reader, ReportModelFindings) and reader.labels == tuple(model.finding_labels)
    ecg = torch.randn(3, *model.encoder.contract.input_shape)
    with torch.no_grad():
        expected = model(ecg=ecg).finding_logits  # the findings head as the encoder stage trains it
        torch.testing.assert_close(reader(ecg), expected)

    assert main(["classify", "eval", str(tmp_path / "report_model"), "--data", str(prepared_100hz), "--split",
                 "validation", "--bootstrap", "10", "--out", str(tmp_path / "scores"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "a report model's encoder and findings head alone" in out and "| **macro** |" in out
    scores = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert scores["label_source"] == "report-findings" and scores["scored"] == "report-model encoder + findings head"
    unscored = scores["clean"]["unscored"]
    assert unscored and all(f"| {name} |" not in out for name in unscored)  # listed once, after the table


def test_a_report_model_without_a_findings_head_is_refused(tmp_path):
    from meit.classify.model import load_classifier
    from meit.config import ModelConfig
    from meit.models import MeitModel

    MeitModel.build(ModelConfig(llm="tiny-llama", encoder="resnet1d-tiny"), data_fs=100,
                    data_seconds=10).save_pretrained(tmp_path / "m")
    with pytest.raises(ModelError, match="has no findings head"):
        load_classifier(tmp_path / "m")
    meta = tmp_path / "other" / "meit_model.json"
    meta.parent.mkdir()
    meta.write_text(json.dumps({"format": "someone-else", "format_version": 1}))
    with pytest.raises(ModelError, match=r"meit_model\.json: unsupported artifact format 'someone-else' v1"):
        load_classifier(meta.parent)
    meta.write_text("[1, 2")
    with pytest.raises(ModelError, match="is not valid JSON"):
        load_classifier(meta.parent)
