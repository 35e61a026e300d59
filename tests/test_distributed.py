"""2 CPU processes (gloo) follow the same loss trajectory as 1 process with 2× gradient accumulation,
whether launched by ``accelerate launch`` or by ``torchrun`` (never N independent copies)."""

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
          "train.batch_size=2", "--no-progress"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _train(prefix: list[str], tmp_path, prepared, name: str, grad_accum: int, **env: str) -> list[dict]:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 11\n")
    out = subprocess.run(
        [*prefix, "train", str(recipe), f"data.path={prepared}", *COMMON, f"train.grad_accum={grad_accum}",
         f"output_dir={tmp_path / name}"],
        capture_output=True, text=True, env=_env(**env), timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return read_jsonl(tmp_path / name / "logs" / "train.jsonl")


@pytest.fixture(scope="module")
def single_process_log(prepared_100hz, tmp_path_factory):
    return _train([sys.executable, "-m", "meit"], tmp_path_factory.mktemp("one"), prepared_100hz, "one", 2)


def _assert_same(one: list[dict], two: list[dict]) -> None:
    assert [r["step"] for r in two] == [r["step"] for r in one] == [1, 2, 3, 4], "two processes must split the data"
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5), (one, two)
    assert one[-1]["loss"] != one[0]["loss"]


def test_accelerate_launch_two_processes(single_process_log, tmp_path, prepared_100hz):
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--main_process_port", "29533", "-m", "meit.cli"]
    two = _train(launcher, tmp_path, prepared_100hz, "two", 1, ACCELERATE_USE_CPU="1")
    _assert_same(single_process_log, two)


def test_torchrun_two_processes(single_process_log, tmp_path, prepared_100hz):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29544",
                "-m", "meit.cli"]
    _assert_same(single_process_log, _train(torchrun, tmp_path, prepared_100hz, "tr", 1))


def test_shipped_cpu_config_starts_two_processes(tmp_path):
    """recipes/accelerate/cpu_2proc.yaml must give 2 distributed processes, not 1 (MULTI_CPU's trap)."""
    script = tmp_path / "world.py"
    script.write_text("from accelerate import Accelerator\n"
                      "a = Accelerator(cpu=True)\n"
                      "import os\n"  # one write per line: two processes share the pipe
                      "os.write(1, f'world {a.num_processes} {a.process_index}\\n'.encode())\n")
    out = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "recipes/accelerate/cpu_2proc.yaml",
         "--main_process_port", "29587", str(script)], capture_output=True, text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(line for line in out.stdout.splitlines() if line.startswith("world")) == ["world 2 0", "world 2 1"]
