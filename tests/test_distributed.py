"""2 CPU processes (gloo) follow the same loss trajectory as 1 process with 2× gradient accumulation,
whether launched by ``accelerate launch`` or by ``torchrun`` (never N independent copies)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from meit.training.logs import read_jsonl

from .fault_hooks import ROOT, killed_after_checkpoint

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


# -- failure paths and exact resume on 2 processes ----------------------------------------------

ACCELERATE_CPU = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1"]
#: runs `meit` with the loss of the 3rd micro-batch made NaN on rank 1 only (test code, not a production hook)
NAN_ON_RANK_1 = """
import os, sys
from meit.cli import main
from meit.training import engine

original = engine._InstructionTask.loss
calls = [0]

def loss(self, model, batch):
    value = original(self, model, batch)
    calls[0] += 1
    return value * float("nan") if calls[0] == 3 and os.environ["RANK"] == "1" else value

engine._InstructionTask.loss = loss
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    """A port nobody listens on now (other jobs on this machine launch distributed runs too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _failure(done: subprocess.CompletedProcess) -> str:
    """The lines of a failed launch that say why (the launcher's own summary comes last and says little)."""
    lines = done.stderr.splitlines()
    causes = [line for line in lines if "Error" in line or "error:" in line]
    return "\n".join(causes[-20:]) + "\n…\n" + "\n".join(lines[-15:])


def _kill_processes_mentioning(marker: str) -> None:
    """SIGKILL every process whose command line contains ``marker`` (a test's own tmp_path).

    The launcher starts each worker in a session of its own, so killing the launcher's group leaves hung
    workers behind, holding the output pipes open.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def _run_or_kill(cmd: list[str], env: dict[str, str], timeout: float, marker: str) -> subprocess.CompletedProcess:
    """Run a launcher; on timeout kill it and its workers (found by ``marker`` in their arguments) and fail."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_processes_mentioning(marker)
        out, err = proc.communicate()
        pytest.fail(f"hung for {timeout:.0f}s (killed):\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_nan_loss_on_one_rank_stops_every_rank_with_the_same_error(tmp_path, prepared_100hz):
    """Only rank 1 sees a NaN loss: both ranks save the debug checkpoint together and raise the same error
    (before, rank 1 went to the save while rank 0 waited in the gradient all-reduce)."""
    script = tmp_path / "nan_on_rank_1.py"
    script.write_text(NAN_ON_RANK_1)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 11\n")
    cmd = [*ACCELERATE_CPU, "--main_process_port", str(_free_port()), str(script), "train", str(recipe),
           f"data.path={prepared_100hz}", *COMMON, "train.grad_accum=1", "train.max_steps=4",
           f"output_dir={tmp_path / 'nan'}"]
    done = _run_or_kill(cmd, _env(ACCELERATE_USE_CPU="1"), timeout=240, marker=str(tmp_path))
    assert done.returncode != 0
    # each message up to its newline or the next message: robust to ranks' writes landing on one line
    errors = re.findall(r"meit train: error: .*?(?=meit train: error: |\n|$)", done.stderr)
    assert len(errors) == 2 and errors[0] == errors[1], _failure(done)
    assert "loss became nan on rank 1 of 2 at step 3" in errors[0] and "checkpoints-nonfinite/step-2" in errors[0]
    assert (tmp_path / "nan" / "checkpoints-nonfinite" / "step-2" / "COMPLETE").is_file()
    assert [r["step"] for r in read_jsonl(tmp_path / "nan" / "logs" / "train.jsonl")] == [1, 2]


def test_each_rank_resumes_with_its_own_rng(tmp_path, prepared_100hz):
    """LoRA dropout on 2 processes whose batches differ in length (so their generators drift apart): a run
    killed after its checkpoint and resumed equals the uninterrupted one bitwise, on every rank's data."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 11\n")
    args = [f"data.path={prepared_100hz}", *COMMON, "model.lora.dropout=0.2", "train.grad_accum=1",
            "train.max_steps=4", "train.save_every=2"]

    def launch(name: str, *extra: str, killed_after: int | None = None) -> subprocess.CompletedProcess:
        module = ["-m", "meit.cli"] if killed_after is None else killed_after_checkpoint(killed_after)
        cmd = [*ACCELERATE_CPU, "--main_process_port", str(_free_port()), *module, "train", str(recipe), *args,
               f"output_dir={tmp_path / name}", *extra]
        return _run_or_kill(cmd, _env(ACCELERATE_USE_CPU="1"), timeout=600, marker=str(tmp_path))

    straight = launch("a")
    assert straight.returncode == 0, _failure(straight)
    crashed = launch("b", killed_after=2)
    assert crashed.returncode != 0 and not (tmp_path / "b" / "final").exists()
    assert (tmp_path / "b" / "checkpoints" / "step-2" / "COMPLETE").is_file(), _failure(crashed)
    resumed = launch("b", "train.resume=auto")
    assert resumed.returncode == 0, _failure(resumed)
    log_a, log_b = (read_jsonl(tmp_path / n / "logs" / "train.jsonl") for n in ("a", "b"))
    assert [r["step"] for r in log_b] == [1, 2, 3, 4]
    assert [r["loss"] for r in log_b] == [r["loss"] for r in log_a]
    for name in ("encoder.safetensors", "projector.safetensors", "adapter/adapter_model.safetensors"):
        a, b = load_file(tmp_path / "a" / "final" / name), load_file(tmp_path / "b" / "final" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_classify_on_two_processes_follows_one_process(tmp_path, prepared_100hz):
    """`meit classify train` on the shared loop: 2 gloo processes = 1 process with 2× accumulation; one scorer."""
    common = ["classify", "train", "recipes/classify_signal.yaml", f"data.path={prepared_100hz}",
              "ecg.encoder=resnet1d-tiny", "data.labels=scp-findings", "data.min_positives=3",
              "data.test_split=validation", "train.max_steps=3", "train.batch_size=4", "train.head_dropout=0.0",
              "train.warmup_ratio=0.0", "train.log_every=1", "eval.bootstrap=10", "--no-progress"]
    runs = {}
    for name, prefix, accumulation, env in (
            ("one", [sys.executable, "-m", "meit"], 2, {}),
            ("two", [*ACCELERATE_CPU, "--main_process_port", str(_free_port()), "-m", "meit.cli"], 1,
             {"ACCELERATE_USE_CPU": "1"})):
        out = subprocess.run([*prefix, *common, f"train.grad_accum={accumulation}", f"output_dir={tmp_path / name}"],
                             capture_output=True, text=True, env=_env(**env), timeout=900, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.count("| **macro** |") == 1  # scored once, by the main process
        runs[name] = read_jsonl(tmp_path / name / "logs" / "train.jsonl")
    assert [r["step"] for r in runs["two"]] == [r["step"] for r in runs["one"]] == [1, 2, 3]
    for a, b in zip(runs["one"], runs["two"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5), runs
