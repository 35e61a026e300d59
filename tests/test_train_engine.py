"""The training loop end to end on tiny backbones: loss falls, artifacts reload, resume is exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from meit.config import load_recipe
from meit.training import train
from meit.training.logs import read_jsonl

TINY = ["model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8", "model.lora.dropout=0.0",
        "model.max_length=96", "train.batch_size=4", "train.lr=3e-3", "train.lr_encoder=1e-3",
        "train.warmup_ratio=0.0", "train.trackers=[]", "train.log_every=1", "data.fs=100", "eval.max_new_tokens=8",
        "eval.meteor=false", "eval.max_samples=6", "eval.batch_size=3"]


def _recipe(tmp_path, prepared, *extra):
    return load_recipe(None, [f"data.path={prepared}", f"output_dir={tmp_path / 'run'}", "model.llm=tiny-llama",
                              *TINY, *extra])


@pytest.mark.parametrize("fusion", ["kv", "prefix"])
def test_training_lowers_loss_and_final_artifact_evaluates(tmp_path, prepared_100hz, fusion):
    from meit.evaluation.runner import evaluate_model
    from meit.models import MeitModel

    recipe = _recipe(tmp_path, prepared_100hz, f"model.fusion={fusion}", "train.max_steps=12",
                     "train.eval_every=6", "data.max_eval_samples=8")
    result = train(recipe, progress=False)
    assert result.steps == 12 and len(result.losses) == 12
    assert sum(result.losses[-3:]) / 3 < sum(result.losses[:3]) / 3
    assert [s for s, _ in result.val_losses] == [6, 12]
    log = read_jsonl(Path(recipe.output_dir) / "logs" / "train.jsonl")
    assert [r["step"] for r in log] == list(range(1, 13)) and "val_loss" in log[5]
    samples = log[5]["samples"]  # a few validation reports generated during training
    assert len(samples) == 2 and {"id", "prediction", "reference"} <= set(samples[0])
    assert (result.final_dir / "meit_model.json").is_file()

    model = MeitModel.from_pretrained(result.final_dir)
    metrics = evaluate_model(model, recipe, tmp_path / "eval", checkpoint=str(result.final_dir), progress=False)
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"):
        assert key in metrics and metrics[key] >= 0
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and set(rows[0]) == {"id", "prediction", "reference"}
    provenance = json.loads((tmp_path / "eval" / "metrics.json").read_text())["provenance"]
    assert provenance["data_manifest_sha256"] and provenance["decoding"]["max_new_tokens"] == 8


def test_align_stage_trains_only_the_projector(tmp_path, prepared_100hz):
    from meit.models import MeitModel
    from meit.training.setup import build_model

    recipe = _recipe(tmp_path, prepared_100hz, "train.stage=align", "train.max_steps=2")
    before = build_model(recipe)
    result = train(recipe, progress=False)
    after = MeitModel.from_pretrained(result.final_dir)
    changed = {
        name.split(".")[0]
        for name, tensor in after.state_dict().items()
        if name in before.state_dict() and not torch.equal(tensor, before.state_dict()[name])
    }
    assert changed == {"projector"}, changed


def _train_cli(recipe_file: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meit", "train", str(recipe_file), "--no-progress", *overrides],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)


def test_sigkill_after_checkpoint_then_resume_matches_uninterrupted(tmp_path, prepared_100hz):
    """A run killed (SIGKILL) right after its first checkpoint and resumed ends bitwise equal."""
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("seed: 5\n")
    common = [f"data.path={prepared_100hz}", "model.llm=tiny-gpt2", *TINY, "model.lora.dropout=0.1",
              "train.max_steps=8", "train.save_every=3", "train.keep_last=5"]
    straight = _train_cli(recipe_file, *common, f"output_dir={tmp_path / 'a'}")
    assert straight.returncode == 0, straight.stderr[-3000:]

    crashed = _train_cli(recipe_file, *common, f"output_dir={tmp_path / 'b'}",
                         env={"MEIT_CRASH_AFTER_CHECKPOINT": "3"})
    assert crashed.returncode == -9, crashed.stderr[-3000:]
    assert not (tmp_path / "b" / "final").exists()
    resumed = _train_cli(recipe_file, *common, f"output_dir={tmp_path / 'b'}", "train.resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    for name in ("encoder.safetensors", "projector.safetensors"):
        a, b = load_file(tmp_path / "a" / "final" / name), load_file(tmp_path / "b" / "final" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    adapter_a = load_file(next((tmp_path / "a" / "final").rglob("adapter_model.safetensors")))
    adapter_b = load_file(next((tmp_path / "b" / "final").rglob("adapter_model.safetensors")))
    assert all(torch.equal(adapter_a[k], adapter_b[k]) for k in adapter_a)
    log_a = read_jsonl(tmp_path / "a" / "logs" / "train.jsonl")
    log_b = read_jsonl(tmp_path / "b" / "logs" / "train.jsonl")
    assert [r["step"] for r in log_b] == list(range(1, 9))
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]


def test_out_of_memory_says_what_to_change(tmp_path, prepared_100hz, monkeypatch):
    from meit.errors import TrainingError
    from meit.models.model import MeitModel

    def explode(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(MeitModel, "forward", explode)
    with pytest.raises(TrainingError, match=r"out of memory at step 1 .*train.batch_size.*gradient_checkpointing"):
        train(_recipe(tmp_path, prepared_100hz, "train.max_steps=2"), progress=False)


def test_nonfinite_loss_stops_with_a_debug_checkpoint(tmp_path, prepared_100hz):
    from meit.errors import TrainingError

    recipe = _recipe(tmp_path, prepared_100hz, "train.max_steps=3", "train.lr=1e30", "train.lr_encoder=1e30",
                     "train.max_grad_norm=null")
    with pytest.raises(TrainingError, match=r"loss became .* at step \d+.*saved for debugging") as err:
        train(recipe, progress=False)
    saved = list((tmp_path / "run" / "checkpoints-nonfinite").glob("step-*/COMPLETE"))
    assert saved, err.value


def test_length_grouped_training_uses_token_lengths_without_reading_signals(tmp_path, prepared_100hz):
    from meit.training.setup import build_model, build_split_dataset

    recipe = _recipe(tmp_path, prepared_100hz, "data.group_by_length=true", "train.max_steps=3")
    model = build_model(recipe)
    dataset = build_split_dataset(recipe, model, "train")
    assert dataset.token_lengths() == [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
    assert train(recipe, progress=False).steps == 3
