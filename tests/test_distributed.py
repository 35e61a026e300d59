"""2 CPU processes (gloo, DDP through accelerate) follow the same loss trajectory as 1 process with 2× accumulation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from meit.training.logs import read_jsonl

pytestmark = pytest.mark.slow

COMMON = ["model.llm=tiny-llama", "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8",
          "model.lora.dropout=0.0", "model.max_length=96", "train.lr=2e-3", "train.warmup_ratio=0.0",
          "train.trackers=[]", "train.log_every=1", "data.fs=100", "data.max_train_samples=16", "train.epochs=1",
          "train.batch_size=2"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def test_two_processes_match_one_process_with_double_accumulation(tmp_path, prepared_100hz):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 11\n")
    data = f"data.path={prepared_100hz}"
    single = subprocess.run(
        [sys.executable, "-m", "meit", "train", str(recipe), data, *COMMON, "train.grad_accum=2",
         f"output_dir={tmp_path / 'one'}", "--no-progress"],
        capture_output=True, text=True, env=_env(), timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--main_process_port", "29533", "-m", "meit.cli"]
    double = subprocess.run(
        [*launcher, "train", str(recipe), data, *COMMON, "train.grad_accum=1", f"output_dir={tmp_path / 'two'}",
         "--no-progress"],
        capture_output=True, text=True, env=_env(ACCELERATE_USE_CPU="1"), timeout=900)
    assert double.returncode == 0, double.stderr[-3000:]
    one = read_jsonl(tmp_path / "one" / "logs" / "train.jsonl")
    two = read_jsonl(tmp_path / "two" / "logs" / "train.jsonl")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [1, 2, 3, 4]
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5), (one, two)
    assert one[-1]["loss"] != one[0]["loss"]


def test_torchrun_two_processes_match_accelerate_launch(tmp_path, prepared_100hz):
    """Under torchrun the run is one 2-process job (not two independent runs): same trajectory as above."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 11\n")
    args = ["train", str(recipe), f"data.path={prepared_100hz}", *COMMON, "train.grad_accum=1", "--no-progress"]
    single = subprocess.run([sys.executable, "-m", "meit", *args, "train.grad_accum=2", f"output_dir={tmp_path / 'one'}"],
                            capture_output=True, text=True, env=_env(), timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29544",
                "-m", "meit.cli"]
    out = subprocess.run([*torchrun, *args, f"output_dir={tmp_path / 'tr'}"], capture_output=True, text=True,
                         env=_env(), timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    one = read_jsonl(tmp_path / "one" / "logs" / "train.jsonl")
    two = read_jsonl(tmp_path / "tr" / "logs" / "train.jsonl")
    assert [r["step"] for r in two] == [1, 2, 3, 4], "two processes must split the data, not each run it all"
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)
