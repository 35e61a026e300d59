"""The encoder stage and the findings head: recipe checks, the two-stage run, reuse, artifacts."""

from __future__ import annotations

import pytest
import torch

from meit.config import load_recipe
from meit.errors import ConfigError
from meit.findings import FINDINGS, finding_matrix
from meit.training.logs import read_jsonl

TINY = ["model.llm=tiny-llama", "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8",
        "model.max_length=96", "model.finding_head=true", "model.projector_norm=true", "data.fs=100",
        "train.batch_size=4", "train.trackers=[]", "train.log_every=1", "train.warmup_ratio=0.0"]


def _recipe(tmp_path, prepared, *extra):
    return load_recipe(None, [f"data.path={prepared}", f"output_dir={tmp_path / 'run'}", *TINY, *extra])


@pytest.mark.parametrize(("overrides", "message"), [
    (["train.encoder_stage.max_steps=2", "train.init_from=somewhere"], "both say where the model starts"),
    (["train.encoder_stage.max_steps=2", "train.stage=encoder"], "train.encoder_stage=null"),
    (["model.finding_head=false", "train.aux_findings_weight=0.5"], "set model.finding_head=true"),
    (["train.batch_size=1"], "at least 2 per process"),
])
def test_recipes_that_cannot_work_are_refused_with_the_key_to_change(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(None, [f"output_dir={tmp_path}", *TINY, *overrides])


def test_finding_matrix_reads_the_reports():
    labels = list(FINDINGS)
    matrix = finding_matrix(["Sinus bradycardia, rate 48 bpm. Left bundle branch block.", "No abnormality detected."],
                            labels)
    assert matrix.shape == (2, len(labels)) and matrix.dtype.name == "float32"
    first = {labels[i] for i in matrix[0].nonzero()[0]}
    assert {"sinus_brady", "rate_brady", "lbbb"} <= first and "normal_ecg" not in first
    assert {labels[i] for i in matrix[1].nonzero()[0]} == {"normal_ecg"}


def test_encoder_stage_runs_first_is_reused_and_a_stale_one_is_refused(tmp_path, prepared_100hz):
    from meit.models import MeitModel
    from meit.training import train

    extra = ["train.encoder_stage.max_steps=4", "train.encoder_stage.batch_size=4",
             "train.encoder_stage.eval_every=2", "train.max_steps=2", "train.train_encoder=false"]
    recipe = _recipe(tmp_path, prepared_100hz, *extra)
    result = train(recipe, progress=False)
    stage_dir = tmp_path / "run" / "encoder_stage"
    log = read_jsonl(stage_dir / "logs" / "train.jsonl")
    assert [r["step"] for r in log if "val_findings" in r] == [2, 4]
    assert {"loss", "micro_f1", "macro_f1"} <= set(log[-1]["val_findings"])

    stage = MeitModel.from_pretrained(stage_dir / "final")
    final = MeitModel.from_pretrained(result.final_dir)
    assert final.finding_labels == stage.finding_labels == list(FINDINGS)
    # the LLM stage started from the encoder stage and kept its encoder (train.train_encoder=false)
    for (name, a), b in zip(stage.encoder.state_dict().items(), final.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(stage.finding_head.parameters(), final.finding_head.parameters(), strict=True):
        assert torch.equal(a, b)
    assert final.projector.out_norm.weight.shape[0] == final.hf_model.config.hidden_size

    stamp = (stage_dir / "final" / "encoder.safetensors").stat().st_mtime_ns
    train(recipe, progress=False)  # same recipe: the finished encoder stage is reused
    assert (stage_dir / "final" / "encoder.safetensors").stat().st_mtime_ns == stamp

    changed = _recipe(tmp_path, prepared_100hz, *extra, "train.encoder_stage.lr=5e-4")
    with pytest.raises(ConfigError, match="another recipe"):
        train(changed, progress=False)


def test_aux_findings_loss_trains_the_head_beside_the_lm(tmp_path, prepared_100hz):
    from meit.training import train
    from meit.training.setup import build_model

    recipe = _recipe(tmp_path, prepared_100hz, "train.max_steps=3", "train.aux_findings_weight=0.5",
                     "train.lr_encoder=1e-3")
    before = [p.detach().clone() for p in build_model(recipe).finding_head.parameters()]
    result = train(recipe, progress=False)
    from meit.models import MeitModel

    after = list(MeitModel.from_pretrained(result.final_dir).finding_head.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
