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

from .fault_hooks import ROOT, killed_after_checkpoint

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


def _train_cli(recipe_file: Path, *overrides: str, killed_after: int | None = None) -> subprocess.CompletedProcess:
    module = ["-m", "meit"] if killed_after is None else killed_after_checkpoint(killed_after)
    return subprocess.run([sys.executable, *module, "train", str(recipe_file), "--no-progress", *overrides],
                          capture_output=True, text=True, env=dict(os.environ), timeout=600, cwd=ROOT)


def test_sigkill_after_checkpoint_then_resume_matches_uninterrupted(tmp_path, prepared_100hz):
    """A run killed (SIGKILL) while saving step 6 resumes from step 3 and ends bitwise equal, log included."""
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("seed: 5\n")
    common = [f"data.path={prepared_100hz}", "model.llm=tiny-gpt2", *TINY, "model.lora.dropout=0.1",
              "train.max_steps=8", "train.save_every=3", "train.keep_last=5"]
    straight = _train_cli(recipe_file, *common, f"output_dir={tmp_path / 'a'}")
    assert straight.returncode == 0, straight.stderr[-3000:]

    crashed = _train_cli(recipe_file, *common, f"output_dir={tmp_path / 'b'}", killed_after=6)
    assert crashed.returncode == -9, crashed.stderr[-3000:]
    assert not (tmp_path / "b" / "final").exists()
    # as if the kill had come while step 6 was being saved: its folder never became complete
    checkpoints = tmp_path / "b" / "checkpoints"
    (checkpoints / "step-6").rename(checkpoints / ".tmp-step-6")
    assert [r["step"] for r in read_jsonl(tmp_path / "b" / "logs" / "train.jsonl")] == list(range(1, 7))
    resumed = _train_cli(recipe_file, *common, f"output_dir={tmp_path / 'b'}", "train.resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and "step-3 (step 3" in resumed.stderr

    for name in ("encoder.safetensors", "projector.safetensors"):
        a, b = load_file(tmp_path / "a" / "final" / name), load_file(tmp_path / "b" / "final" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    adapter_a = load_file(next((tmp_path / "a" / "final").rglob("adapter_model.safetensors")))
    adapter_b = load_file(next((tmp_path / "b" / "final").rglob("adapter_model.safetensors")))
    assert all(torch.equal(adapter_a[k], adapter_b[k]) for k in adapter_a)
    log_a = read_jsonl(tmp_path / "a" / "logs" / "train.jsonl")
    log_b = read_jsonl(tmp_path / "b" / "logs" / "train.jsonl")
    assert [r["step"] for r in log_b] == list(range(1, 9)), "steps 4-6 of the killed run must not stay in the log"
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]


def test_runs_are_never_mixed_in_one_output_dir(tmp_path, prepared_100hz):
    """A fresh run refuses an output_dir holding checkpoints; a resume refuses another run's checkpoint."""
    from meit.errors import TrainingError

    first = _recipe(tmp_path, prepared_100hz, "train.max_steps=2", "train.save_every=1", "train.keep_last=1")
    assert train(first, progress=False).steps == 2
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["step-2"]

    # the trap: a re-run (here: longer, saving rarely) used to prune its own checkpoints among the old
    # ones by step number, and resume=auto then continued whichever run had the higher step
    again = _recipe(tmp_path, prepared_100hz, "train.max_steps=1", "train.save_every=1", "train.keep_last=1")
    with pytest.raises(TrainingError, match=r"already holds checkpoints of an earlier run \(step-2\).*"
                                            r"train\.resume=auto.*fresh output_dir"):
        train(again, progress=False)
    other = _recipe(tmp_path, prepared_100hz, "train.max_steps=2", "train.save_every=1", "train.lr=1e-3",
                    "train.resume=auto")
    with pytest.raises(TrainingError, match=r"train\.resume=auto: checkpoint .*step-2 belongs to another run "
                                            r"\(train\.lr: 0\.003 in the checkpoint, 0\.001 now\).*fresh output_dir"):
        train(other, progress=False)
    explicit = _recipe(tmp_path, prepared_100hz, "train.max_steps=3", "train.save_every=1",
                       f"train.resume={checkpoints / 'step-2'}")
    with pytest.raises(TrainingError, match=r"train\.max_steps: 2 in the checkpoint, 3 now"):
        train(explicit, progress=False)
    assert [p.name for p in checkpoints.iterdir()] == ["step-2"], "a refused run must not touch the checkpoints"
    # what may change on resume (RESUMABLE_KEYS) does not make it another run
    same = _recipe(tmp_path, prepared_100hz, "train.max_steps=2", "train.save_every=2", "train.keep_last=3",
                   "train.log_every=5", "train.resume=auto")
    assert train(same, progress=False).steps == 2


def test_evaluation_and_sample_reports_leave_the_training_rng_alone(tmp_path, prepared_100hz):
    """LoRA dropout draws from the global generator; generating validation reports (which reseeds it) and
    validation losses in between must not change a single training loss or weight."""
    common = ["train.max_steps=5", "model.lora.dropout=0.2"]
    plain = train(_recipe(tmp_path / "plain", prepared_100hz, *common), progress=False)
    evaluated = train(_recipe(tmp_path / "eval", prepared_100hz, *common, "train.eval_every=2",
                              "train.sample_reports=2", "data.max_eval_samples=4"), progress=False)
    log = read_jsonl(tmp_path / "eval" / "run" / "logs" / "train.jsonl")
    assert "samples" in log[1] and "val_loss" in log[3], "the evaluations must have run"
    assert evaluated.losses == plain.losses
    a = load_file(next(plain.final_dir.rglob("adapter_model.safetensors")))
    b = load_file(next(evaluated.final_dir.rglob("adapter_model.safetensors")))
    assert all(torch.equal(a[k], b[k]) for k in a)


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


def test_projector_norm_under_zero3_is_refused_before_the_build(tmp_path, prepared_100hz, monkeypatch):
    """Under ZeRO-3 transformers loads the base partitioned (whatever zero3_init_flag says), so the forward that
    sizes model.projector_norm's scale cannot run: a ConfigError saying what to do, not torch's '2-D' error."""
    import transformers.integrations

    from meit.errors import ConfigError
    from meit.training.setup import build_model

    monkeypatch.setattr(transformers.integrations, "is_deepspeed_zero3_enabled", lambda: True)
    with pytest.raises(ConfigError, match=r"model\.projector_norm=true .* ZeRO-3 .*model\.projector_norm=false"):
        build_model(_recipe(tmp_path, prepared_100hz, "model.projector_norm=true"))
