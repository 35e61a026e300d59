"""``meit pretrain`` end to end: artifact, self-evaluation, exact resume, 2 processes, hand-off to ``meit train``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from meit.config import load_recipe
from meit.errors import ConfigError
from meit.pretrain import EcgTextModel, PretrainRecipe
from meit.retrieval.pretraining import pretrain_and_evaluate
from meit.training.logs import read_jsonl

from .fault_hooks import ROOT, killed_after_checkpoint

FAST = ["ecg.encoder=resnet1d-tiny", "data.fs=100", "text.freeze_layers=5", "text.max_length=48",
        "objective.embed_dim=32", "train.batch_size=8", "train.trackers=[]", "train.log_every=1",
        "eval.max_samples=24", "eval.min_positives=1", "eval.batch_size=8"]


def _recipe(prepared, out, *extra: str) -> PretrainRecipe:
    return load_recipe(None, [f"data.path={prepared}", f"output_dir={out}", *FAST, *extra], schema=PretrainRecipe)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


@pytest.fixture(scope="module")
def pretrained(prepared_100hz, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "run"
    recipe = _recipe(prepared_100hz, out, "train.max_steps=4", "train.eval_every=2", "objective.mask_ratio=0.3",
                     "objective.reconstruction_weight=0.5")
    return pretrain_and_evaluate(recipe, progress=False)


def test_artifact_and_metrics(pretrained):
    final = pretrained.final_dir
    for name in ("encoder.safetensors", "encoder.json", "heads.safetensors", "pretrain.json", "recipe.yaml",
                 "text_encoder/config.json"):
        assert (final / name).is_file(), name
    assert json.loads((final / "encoder.json").read_text())["contract"]["fs"] == 100
    assert pretrained.steps == 4 and all(torch.isfinite(torch.tensor(pretrained.losses)))
    assert [e["step"] for e in pretrained.evaluations] == [2, 4]
    assert {"val_loss", "val_recall@1", "val_recall@5"} <= set(pretrained.evaluations[0])
    metrics = json.loads((final.parent / "metrics.json").read_text())
    assert metrics == pretrained.metrics and 0 < metrics["n"] <= 24
    for direction in ("ecg_to_report", "ecg_to_ecg"):
        for k in (1, 5, 10):
            assert 0.0 <= metrics[direction][f"recall@{k}"] <= 1.0
            assert 0.0 < metrics[direction][f"chance@{k}"] <= 1.0
    assert metrics["ecg_to_report"]["chance@1"] == pytest.approx(1 / metrics["ecg_to_report"]["candidates"])
    shots = metrics["zero_shot"]
    assert "sinus_rhythm" in shots and all({"auroc", "positives", "negatives"} <= set(v) for v in shots.values())
    log = read_jsonl(final.parent / "logs" / "train.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4]


def test_artifact_reloads_identically(pretrained, prepared_100hz):
    a = EcgTextModel.from_pretrained(pretrained.final_dir)
    b = EcgTextModel.from_pretrained(pretrained.final_dir)
    ecg = torch.randn(3, 12, 1000)
    assert torch.equal(a.embed_ecgs(ecg), b.embed_ecgs(ecg))
    texts = ["sinus rhythm", "atrial fibrillation"]
    assert torch.equal(a.embed_texts(texts), b.embed_texts(texts))
    assert a.decoder is not None, "the reconstruction decoder travels with the artifact"
    norms = a.embed_ecgs(ecg).norm(dim=-1)
    assert torch.allclose(norms, torch.ones(3), atol=1e-5)


def test_meit_train_starts_from_the_pretrained_encoder(pretrained, prepared_100hz, tmp_path):
    from meit.training.setup import build_model

    recipe = load_recipe(None, [f"data.path={prepared_100hz}", f"output_dir={tmp_path}", "model.llm=tiny-llama",
                                "model.encoder=resnet1d-tiny", "data.fs=100",
                                f"model.encoder_checkpoint={pretrained.final_dir}"])
    model = build_model(recipe)
    saved = load_file(str(pretrained.final_dir / "encoder.safetensors"))
    state = model.encoder.state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(saved[k], state[k]) for k in saved)
    assert model.encoder.contract.fs == 100


def test_pretrain_recipe_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"did you mean 'objective\.temperature'"):
        load_recipe(None, ["objective.temprature=0.1"], schema=PretrainRecipe)
    with pytest.raises(ConfigError, match="mask_ratio"):
        load_recipe(None, ["objective.reconstruction_weight=1"], schema=PretrainRecipe)
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        load_recipe(None, ["train.batch_size=1"], schema=PretrainRecipe)


def test_shipped_pretrain_recipes_validate():
    from pathlib import Path

    recipes = sorted(Path("recipes").glob("*pretrain*.yaml"))
    assert len(recipes) >= 3
    for path in recipes:
        load_recipe(path, schema=PretrainRecipe)


def _cli_pretrain(prefix: list[str], prepared, out, *extra: str, **env: str) -> subprocess.CompletedProcess:
    recipe = out.parent / f"{out.name}.yaml"
    recipe.write_text("seed: 5\n")
    return subprocess.run(
        [*prefix, "pretrain", str(recipe), f"data.path={prepared}", f"output_dir={out}", *FAST, "--no-progress",
         "--no-eval", *extra], capture_output=True, text=True, env=_env(**env), timeout=900, cwd=ROOT)


@pytest.mark.slow
def test_resume_after_sigkill_is_bitwise(prepared_100hz, tmp_path):
    prefix = [sys.executable, "-m", "meit"]
    args = ["train.max_steps=4", "train.save_every=2", "objective.mask_ratio=0.3",
            "objective.reconstruction_weight=0.5", "text.freeze_layers=4"]  # text dropout on in the trained layers
    straight = _cli_pretrain(prefix, prepared_100hz, tmp_path / "a", *args)
    assert straight.returncode == 0, straight.stderr[-3000:]
    crashed = _cli_pretrain([sys.executable, *killed_after_checkpoint(2)], prepared_100hz, tmp_path / "b", *args)
    assert crashed.returncode != 0 and (tmp_path / "b" / "checkpoints" / "step-2" / "COMPLETE").is_file()
    assert not (tmp_path / "b" / "final").exists()
    resumed = _cli_pretrain(prefix, prepared_100hz, tmp_path / "b", *args, "train.resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name in ("encoder.safetensors", "heads.safetensors", "text_encoder/model.safetensors"):
        a, b = load_file(str(tmp_path / "a" / "final" / name)), load_file(str(tmp_path / "b" / "final" / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    log_a = read_jsonl(tmp_path / "a" / "logs" / "train.jsonl")
    log_b = read_jsonl(tmp_path / "b" / "logs" / "train.jsonl")
    assert [r["step"] for r in log_b] == [1, 2, 3, 4]
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_global_batch(prepared_100hz, tmp_path):
    """Negatives are gathered from every process: 2 × 4 rows is one InfoNCE batch of 8, as on 1 process."""
    args = ["ecg.encoder=vit1d-tiny", "text.dropout=0.0", "train.max_steps=3", "train.warmup_ratio=0",
            "train.lr=1e-3"]
    one = _cli_pretrain([sys.executable, "-m", "meit"], prepared_100hz, tmp_path / "one", *args,
                        "train.batch_size=8")
    assert one.returncode == 0, one.stderr[-3000:]
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--main_process_port", "29561", "-m", "meit.cli"]
    two = _cli_pretrain(launcher, prepared_100hz, tmp_path / "two", *args, "train.batch_size=4",
                        ACCELERATE_USE_CPU="1")
    assert two.returncode == 0, two.stderr[-3000:]
    log_one = read_jsonl(tmp_path / "one" / "logs" / "train.jsonl")
    log_two = read_jsonl(tmp_path / "two" / "logs" / "train.jsonl")
    assert [r["step"] for r in log_one] == [r["step"] for r in log_two] == [1, 2, 3]
    for a, b in zip(log_one, log_two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5), (log_one, log_two)
    assert log_one[-1]["loss"] != log_one[0]["loss"]
