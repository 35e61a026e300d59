"""Model cards: every final/ artifact carries model_card.json and MODEL_CARD.md (= render(json)); evals add to it."""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path

import pytest

from meit.cli import main
from meit.config import load_recipe
from meit.hashing import file_sha256
from meit.models.backbones import PRESETS, TINY_LICENCE, UNKNOWN_LICENCE, licence_of, resolve_backbone
from meit.models.card import (
    CARD_JSON,
    CARD_MD,
    ModelCardError,
    add_evaluation,
    card_failures,
    read_card,
    update_card,
    validate_card,
)
from meit.models.card_render import render_card
from meit.training import train

TINY = ["model.llm=tiny-llama", "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8",
        "model.lora.dropout=0.0", "model.max_length=96", "train.batch_size=4", "train.lr=3e-3",
        "train.warmup_ratio=0.0", "train.trackers=[]", "data.fs=100", "eval.max_new_tokens=6", "eval.meteor=false",
        "eval.max_samples=4", "eval.batch_size=4"]
EVAL = ["--no-meteor", "--max-samples", "4", "--max-new-tokens", "6", "--batch-size", "4", "--no-progress"]


def _recipe(prepared: Path, out: Path, *extra: str):
    return load_recipe(None, [f"data.path={prepared}", f"output_dir={out}", *TINY, *extra])


def _cli(monkeypatch, *args: str) -> int:
    """``meit ARGS`` in this process, with the argv a user's shell would give (the card records the command)."""
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/meit", *args])
    return main(list(args))


@pytest.fixture(scope="module")
def trained(prepared_100hz, tmp_path_factory):
    out = tmp_path_factory.mktemp("card") / "run"
    return train(_recipe(prepared_100hz, out, "train.max_steps=4", "train.save_every=2"), progress=False)


def test_training_card_states_the_facts_of_the_run(trained, prepared_100hz):
    from meit.models import MeitModel

    final = trained.final_dir
    assert trained.card_error is None
    card = read_card(final)
    assert (final / CARD_MD).read_text() == render_card(card)
    model = MeitModel.from_pretrained(final)  # its trainable flags are training's: finetune, encoder trained
    params = card["model"]["parameters"]
    assert params["total"] == sum(p.numel() for p in model.parameters())
    assert params["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert params["by_part"]["lora"] > 0 and sum(params["by_part"].values()) == params["total"]
    assert card["model"]["backbone"]["licence"] == TINY_LICENCE
    assert card["model"]["adaptation"] == {"method": "lora", "r": 4, "alpha": 8.0, "dropout": 0.0,
                                           "targets": sorted(resolve_backbone("tiny-llama").lora_targets)}
    contract = card["model"]["encoder"]["contract"]
    assert (contract["fs"], contract["seconds"], contract["leads"]) == (100, 10.0, 12)
    assert card["model"]["encoder"]["lead_names"][:3] == ["I", "II", "III"]
    assert card["model"]["fusion"]["mode"] == "kv"

    training = card["training"]
    data = training["data"]
    assert data["manifest_sha256"] == file_sha256(prepared_100hz / "manifest.json")
    manifest = json.loads((prepared_100hz / "manifest.json").read_text())
    assert data["splits"] == manifest["counts"] and data["synthetic"] is True
    assert data["languages"]["en"] == data["languages_sampled"] > 0
    progress = json.loads((final.parent / "checkpoints" / "step-4" / "progress.json").read_text())
    assert training["recipe_sha256"] == progress["run"]["recipe_sha256"]
    assert training["recipe"]["train"]["max_steps"] == 4 and training["recipe"]["model"]["lora"]["r"] == 4
    assert training["steps"] == 4 and training["seed"] == 42 and training["processes"] == 1
    assert training["epochs"] == pytest.approx(4 / -(-manifest["counts"]["train"] // 4))
    assert training["final_loss"] == pytest.approx(trained.losses[-1])
    assert card["written_by"]["code"]["meit"] and card["evaluations"] == {}

    use = card["intended_use"]
    assert use["use"].startswith("Research only; not a medical device.")
    assert use["synthetic_training_data"] is True and use["languages"] == ["en"]
    assert any("synthetic" in limit for limit in use["limits"])
    assert "Research only; not a medical device" in (final / CARD_MD).read_text()


def test_meit_eval_adds_its_section_and_keeps_other_splits(trained, prepared_100hz, tmp_path, monkeypatch):
    final = str(trained.final_dir)
    args = ["eval", "--checkpoint", final, "--data", str(prepared_100hz), *EVAL]
    assert _cli(monkeypatch, *args, "--split", "test", "--out", str(tmp_path / "test"), "--control", "shuffled") == 0
    card = read_card(final)
    manifest = file_sha256(prepared_100hz / "manifest.json")
    key = f"{prepared_100hz.name}@{manifest[:12]}/test"
    assert list(card["evaluations"]) == [key]
    entry = card["evaluations"][key]
    metrics = json.loads((tmp_path / "test" / "metrics.json").read_text())
    assert entry["metrics"]["bleu_4"] == metrics["bleu_4"] and entry["metrics"]["n"] == 4
    assert entry["controls"]["shuffled"]["clinical_micro_f1"] == metrics["controls"]["shuffled"]["clinical_micro_f1"]
    assert entry["grounding"]["shuffled"] == metrics["grounding"]["shuffled"]
    assert entry["dataset"]["manifest_sha256"] == manifest and entry["dataset"]["split"] == "test"
    assert entry["decoding"]["max_new_tokens"] == 6 and "derangement" in entry["protocol"]["controls"]
    assert entry["run"]["command"].startswith("meit eval --checkpoint") and entry["run"]["timestamp"]
    text = (trained.final_dir / CARD_MD).read_text()
    assert text == render_card(card) and "shuffled control" in text and entry["run"]["command"] in text

    assert _cli(monkeypatch, *args, "--split", "validation", "--out", str(tmp_path / "val")) == 0
    card = read_card(final)
    assert sorted(card["evaluations"]) == sorted([key, key.replace("/test", "/validation")])
    assert card["evaluations"][key] == entry, "an evaluation of another split must not touch this one"
    assert card["evaluations"][key.replace("/test", "/validation")]["controls"] == {}
    assert card["training"]["steps"] == 4, "evaluations leave the training record as it was"


def test_concurrent_card_updates_all_land(trained, tmp_path):
    import shutil

    folder = tmp_path / "final"
    shutil.copytree(trained.final_dir, folder)
    entry = {"kind": "reports", "dataset": {"name": "d"}, "run": {"timestamp": "t", "command": "c"},
             "protocol": {}, "metrics": {"bleu_4": 0.1}}
    threads = [threading.Thread(target=update_card, args=(folder, lambda c, k=k: add_evaluation(c, k, entry)))
               for k in ("a/test", "b/test", "c/test", "d/test")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {"a/test", "b/test", "c/test", "d/test"} <= set(read_card(folder)["evaluations"])


def test_card_errors_are_logged_and_counted_not_fatal(prepared_100hz, tmp_path, monkeypatch, caplog):
    import meit.training.model_card as training_card
    from meit.evaluation.runner import evaluate_model
    from meit.models import MeitModel

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(training_card, "data_facts", broken)
    before = card_failures().get("train", 0)
    with caplog.at_level(logging.WARNING, logger="meit.models.card"):
        result = train(_recipe(prepared_100hz, tmp_path / "run", "train.max_steps=1"), progress=False)
    assert result.steps == 1 and (result.final_dir / "meit_model.json").is_file()
    assert result.card_error == "OSError: disk full" and not (result.final_dir / CARD_JSON).exists()
    assert card_failures()["train"] == before + 1
    assert any("model card of" in r.getMessage() and "disk full" in r.getMessage() for r in caplog.records)

    # an artifact without a card gets one at its first evaluation (training marked as not recorded) ...
    recipe = _recipe(prepared_100hz, tmp_path / "run")
    model = MeitModel.from_pretrained(result.final_dir)
    evaluate_model(model, recipe, tmp_path / "eval", checkpoint=str(result.final_dir), progress=False, controls=[])
    card = read_card(result.final_dir)
    assert card["training"] is None and "Not recorded" in card["training_note"] and len(card["evaluations"]) == 1
    assert card["model"]["parameters"]["trainable"] is None
    # ... and a damaged card makes the evaluation warn and count, not fail
    (result.final_dir / CARD_JSON).write_text("{not json")
    before = card_failures().get("eval", 0)
    metrics = evaluate_model(model, recipe, tmp_path / "eval2", checkpoint=str(result.final_dir), progress=False,
                             controls=[])
    assert "bleu_4" in metrics and card_failures()["eval"] == before + 1
    assert (result.final_dir / CARD_JSON).read_text() == "{not json", "a damaged card is reported, not replaced"


def test_damaged_cards_give_typed_errors_naming_the_field(trained, tmp_path, monkeypatch, capsys):
    good = read_card(trained.final_dir)
    damaged = json.loads(json.dumps(good))
    damaged["training"]["steps"] = "many"
    with pytest.raises(ModelCardError, match=r"training\.steps.*'many'"):
        validate_card(damaged)
    with pytest.raises(ModelCardError, match=r"model\.parameters\.total"):
        validate_card({**good, "model": {**good["model"], "parameters": {"total": -1}}})
    with pytest.raises(ModelCardError, match=r"newer than this meit reads"):
        validate_card({**good, "schema": 99})
    with pytest.raises(ModelCardError, match=r"schema must be an integer"):
        validate_card({k: v for k, v in good.items() if k != "schema"})
    with pytest.raises(ModelCardError, match=r"no model card"):
        read_card(tmp_path)
    (tmp_path / CARD_JSON).write_text(json.dumps(damaged))
    assert _cli(monkeypatch, "card", str(tmp_path)) == 4
    assert "training.steps" in capsys.readouterr().err


def test_card_command_prints_checks_and_regenerates(trained, tmp_path, monkeypatch, capsys):
    import shutil

    folder = tmp_path / "final"
    shutil.copytree(trained.final_dir, folder)
    assert _cli(monkeypatch, "card", str(folder)) == 0
    assert capsys.readouterr().out == (folder / CARD_MD).read_text()
    assert _cli(monkeypatch, "card", str(folder), "--check") == 0
    card = json.loads((folder / CARD_JSON).read_text())
    card["name"] = "renamed by hand"
    (folder / CARD_JSON).write_text(json.dumps(card))
    assert _cli(monkeypatch, "card", str(folder), "--check") == 4
    assert _cli(monkeypatch, "card", str(folder), "--write") == 0
    assert (folder / CARD_MD).read_text().startswith("# Model card: renamed by hand")
    assert _cli(monkeypatch, "card", str(folder), "--check") == 0
    capsys.readouterr()
    assert _cli(monkeypatch, "card", str(folder), "--json") == 0
    assert json.loads(capsys.readouterr().out)["name"] == "renamed by hand"


def test_export_card_keeps_training_and_evaluations(trained, prepared_100hz, tmp_path, monkeypatch):
    from meit.models import MeitModel

    final = trained.final_dir
    if not read_card(final)["evaluations"]:
        assert _cli(monkeypatch, "eval", "--checkpoint", str(final), "--data", str(prepared_100hz), "--split",
                    "test", "--out", str(tmp_path / "eval"), *EVAL) == 0
    source = read_card(final)
    out = tmp_path / "export"
    assert _cli(monkeypatch, "export", "--checkpoint", str(final), "--out", str(out), "--merge-lora") == 0
    card = read_card(out)
    assert (out / CARD_MD).read_text() == render_card(card)
    exported = MeitModel.from_pretrained(out)
    assert card["model"]["parameters"]["total"] == sum(p.numel() for p in exported.parameters())
    assert card["model"]["adaptation"]["method"] == "merged-lora" and "lora" not in card["model"]["parameters"][
        "by_part"]
    assert card["model"]["parameters"]["trainable"] == source["model"]["parameters"]["trainable"]
    assert card["training"] == source["training"] and card["evaluations"] == source["evaluations"]
    derived = card["derived_from"]
    assert derived["checkpoint"] == str(final) and derived["operation"] == "meit export --merge-lora"
    assert derived["source_card_sha256"] == file_sha256(final / CARD_JSON)
    assert "Measured on the source artifact" in (out / CARD_MD).read_text()


def test_pretrain_artifact_card(prepared_100hz, tmp_path):
    from meit.pretrain import EcgTextModel, PretrainRecipe
    from meit.retrieval.pretraining import pretrain_and_evaluate

    recipe = load_recipe(None, [f"data.path={prepared_100hz}", f"output_dir={tmp_path / 'pre'}",
                                "ecg.encoder=resnet1d-tiny", "data.fs=100", "text.freeze_layers=5",
                                "text.max_length=32", "objective.embed_dim=16", "train.batch_size=8",
                                "train.max_steps=2", "train.trackers=[]", "eval.max_samples=16",
                                "eval.min_positives=1", "eval.batch_size=8"], schema=PretrainRecipe)
    result = pretrain_and_evaluate(recipe, progress=False)
    assert result.card_error is None
    card = read_card(result.final_dir)
    assert (result.final_dir / CARD_MD).read_text() == render_card(card)
    model = EcgTextModel.from_pretrained(result.final_dir)
    assert card["model"]["kind"] == "meit-ecg-text" and card["model"]["backbone"] is None
    assert card["model"]["parameters"]["total"] == sum(p.numel() for p in model.parameters())
    assert card["model"]["text_encoder"]["licence"].startswith("Apache-2.0")
    assert card["training"]["steps"] == 2 and card["training"]["stage"] == "contrastive pretraining"
    assert card["training"]["data"]["manifest_sha256"] == file_sha256(prepared_100hz / "manifest.json")
    (entry,) = card["evaluations"].values()
    assert entry["kind"] == "retrieval" and entry["dataset"]["split"] == "validation"
    assert entry["metrics"]["ecg_to_report_recall@1"] == result.metrics["ecg_to_report"]["recall@1"]
    assert entry["controls"]["chance"]["ecg_to_report_recall@1"] == result.metrics["ecg_to_report"]["chance@1"]


def test_backbone_licences():
    assert licence_of(PRESETS["smollm2-135m-instruct"]) == "Apache-2.0"
    assert "Gemma" in licence_of(PRESETS["gemma3-270m"]) and licence_of(PRESETS["gpt2-medium"]) == "MIT"
    assert "Llama 2" in licence_of(PRESETS["llama-2-7b"]) and "Llama 3" in licence_of(PRESETS["llama-3-8b-instruct"])
    assert all(spec.licence for spec in PRESETS.values()), "every preset states its licence"
    folder = resolve_backbone("tiny-gpt2")
    from dataclasses import replace

    assert licence_of(replace(folder, source="/some/folder", licence="")) == UNKNOWN_LICENCE
