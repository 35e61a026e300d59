"""DeepSpeed ZeRO-2 and ZeRO-3 on 2 CPU processes (gloo) through the shipped accelerate configs:
training runs, a SIGKILL after the first checkpoint is resumed with resume=auto, and the resumed run
ends where the uninterrupted one does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from meit.training.logs import read_jsonl

from .fault_hooks import killed_after_checkpoint
from .final_save_probe import PROBE, check_probe, tiny_llama_folder

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
COMMON = ["model.llm=tiny-llama", "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8",
          "model.lora.dropout=0.0", "model.max_length=96", "train.lr=2e-3", "train.warmup_ratio=0.0",
          "train.trackers=[]", "train.log_every=1", "data.fs=100", "data.max_train_samples=24", "train.max_steps=4",
          "train.batch_size=2", "train.save_every=2", "train.keep_last=3", "train.mixed_precision=no", "--no-progress"]


def _launch(stage: int, tmp_path: Path, prepared: Path, name: str, port: int, *extra: str,
            crash_after: int | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    env["OMP_NUM_THREADS"] = "1"
    module = ["-m", "meit.cli"] if crash_after is None else killed_after_checkpoint(crash_after)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 3\n")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "recipes" / "accelerate" / f"deepspeed_zero{stage}.yaml"), "--num_processes", "2",
           "--mixed_precision", "no", "--main_process_port", str(port), *module, "train", str(recipe),
           f"data.path={prepared}", *COMMON, f"output_dir={tmp_path / name}", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200, cwd=ROOT)


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_trains_and_resumes_after_sigkill(stage, tmp_path, prepared_100hz):
    port = 29600 + stage * 10
    straight = _launch(stage, tmp_path, prepared_100hz, "a", port)
    assert straight.returncode == 0, straight.stderr[-4000:]
    log_a = read_jsonl(tmp_path / "a" / "logs" / "train.jsonl")
    assert [r["step"] for r in log_a] == [1, 2, 3, 4]
    assert (tmp_path / "a" / "checkpoints" / "step-4" / "COMPLETE").is_file()

    crashed = _launch(stage, tmp_path, prepared_100hz, "b", port + 1, crash_after=2)
    assert crashed.returncode != 0
    assert (tmp_path / "b" / "checkpoints" / "step-2" / "COMPLETE").is_file()
    assert not (tmp_path / "b" / "final").exists()
    resumed = _launch(stage, tmp_path, prepared_100hz, "b", port + 2, "train.resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-4000:]

    log_b = read_jsonl(tmp_path / "b" / "logs" / "train.jsonl")
    assert [r["step"] for r in log_b] == [1, 2, 3, 4]
    for a, b in zip(log_a, log_b, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
    for name in ("encoder.safetensors", "projector.safetensors"):
        wa, wb = load_file(tmp_path / "a" / "final" / name), load_file(tmp_path / "b" / "final" / name)
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wb[key], wa[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config", ["zero2", "zero2_offload", "zero3", "zero3_offload"])
def test_shipped_deepspeed_json_configs_train_and_save(config, tmp_path, prepared_100hz):
    """`accelerate launch --use_deepspeed --deepspeed_config_file recipes/deepspeed/<config>.json` works as shipped."""
    from meit.models import MeitModel

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    env["OMP_NUM_THREADS"] = "1"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 3\n")
    port = 29700 + ["zero2", "zero2_offload", "zero3", "zero3_offload"].index(config)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--use_deepspeed", "--deepspeed_config_file",
           str(ROOT / "recipes" / "deepspeed" / f"{config}.json"), "--num_processes", "2", "--mixed_precision", "no",
           "--main_process_port", str(port), "-m", "meit.cli", "train", str(recipe), f"data.path={prepared_100hz}",
           *[c for c in COMMON if not c.startswith("train.max_steps")], "train.max_steps=2",
           f"output_dir={tmp_path / 'out'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "out" / "checkpoints" / "step-2" / "COMPLETE").is_file()
    model = MeitModel.from_pretrained(tmp_path / "out" / "final")
    assert all(torch.isfinite(p).all() for p in model.projector.parameters())


@pytest.mark.parametrize("backbone", ["folder", "tiny"])
def test_zero3_final_save_gathers_only_what_the_artifact_holds(backbone, tmp_path, prepared_100hz):
    """A LoRA artifact of a re-creatable base gathers the trainable parameters only, not the frozen base;
    the tiny backbone's artifact holds its base, so everything is gathered. Either way the artifact is byte
    for byte what gathering every parameter wrote."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    env["OMP_NUM_THREADS"] = "1"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 3\n")
    llm = tiny_llama_folder() if backbone == "folder" else "tiny-llama"
    port = 29640 + ["folder", "tiny"].index(backbone)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "recipes" / "accelerate" / "deepspeed_zero3.yaml"), "--num_processes", "2",
           "--mixed_precision", "no", "--main_process_port", str(port), str(script), str(tmp_path / "probe.json"),
           "train", str(recipe), f"data.path={prepared_100hz}",
           *[c for c in COMMON if not c.startswith(("train.max_steps", "train.save_every"))], "train.max_steps=1",
           f"model.llm={llm}", f"output_dir={tmp_path / 'run'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    check_probe(tmp_path / "probe.json", tmp_path / "run", adapter_only=backbone == "folder")
