"""FSDP2 in ``meit train``.

accelerate never selects FSDP on CPU, so the runs here set ``MEIT_FORCE_FSDP_ON_CPU=1`` (a testing aid,
see ``meit/training/fsdp.py``) and launch the real engine with ``recipes/accelerate/fsdp.yaml`` on 2 CPU
processes over gloo. Checked: the loss and gradient-norm trajectory of 2 processes × 2 accumulation
steps (with clipping active) equals one process × 4; a run SIGKILLed after its first checkpoint and resumed with
``resume=auto`` ends bitwise where the uninterrupted run does; the final artifact reloads in one process
with the validation loss the sharded model logged at the last step. The cheap tests cover the refusals,
the wrap policy, ``save_pretrained(state_dict=…)`` and the upstream canary (accelerate still falls back
to MULTI_CPU for an FSDP plugin on CPU: when that changes, the hook can go).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from meit.errors import ConfigError, ModelError, TrainingError
from meit.training.logs import read_jsonl

from .fault_hooks import killed_after_checkpoint
from .final_save_probe import PROBE, check_probe, tiny_llama_folder

ROOT = Path(__file__).resolve().parents[1]
MAX_GRAD_NORM = 0.3  # below the first steps' norms (≈0.37–0.66): clipping is active and must use the global norm
COMMON = ["model.llm=tiny-llama", "model.encoder=resnet1d-tiny", "model.fusion=kv", "model.lora.r=4",
          "model.lora.alpha=8", "model.lora.dropout=0.0", "model.max_length=96", "train.lr=2e-3",
          "train.lr_encoder=1e-3", "train.warmup_ratio=0.0", "train.trackers=[]", "train.log_every=1", "data.fs=100",
          "data.max_train_samples=16", "data.max_eval_samples=8", "train.max_steps=4", "train.batch_size=1",
          "train.save_every=2", "train.keep_last=3", "train.eval_every=4", f"train.max_grad_norm={MAX_GRAD_NORM}",
          "train.mixed_precision=no", "--no-progress"]
SAVED = ("encoder.safetensors", "projector.safetensors", "adapter/adapter_model.safetensors", "llm/model.safetensors")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_",
                                                                    "MEIT_", "FSDP_"))}
    env.update({"OMP_NUM_THREADS": "1", **extra})
    return env


def _recipe(tmp_path: Path) -> Path:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 3\n")
    return recipe


def _fsdp_train(tmp_path: Path, prepared: Path, name: str, port: int, *extra: str,
                crash_after: int | None = None) -> subprocess.CompletedProcess:
    env = _env(MEIT_FORCE_FSDP_ON_CPU="1")
    module = ["-m", "meit.cli"] if crash_after is None else killed_after_checkpoint(crash_after)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "recipes" / "accelerate" / "fsdp.yaml"), "--num_processes", "2", "--mixed_precision", "no",
           "--main_process_port", str(port), *module, "train", str(_recipe(tmp_path)),
           f"data.path={prepared}", *COMMON, "train.grad_accum=2", f"output_dir={tmp_path / name}", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def runs(prepared_100hz, tmp_path_factory):
    """One process × 4 accumulation steps; FSDP2 on 2 processes × 2; the same killed after step 2 and resumed."""
    tmp = tmp_path_factory.mktemp("fsdp")
    one = subprocess.run([sys.executable, "-m", "meit", "train", str(_recipe(tmp)), f"data.path={prepared_100hz}",
                          *COMMON, "train.grad_accum=4", f"output_dir={tmp / 'one'}"],
                         capture_output=True, text=True, env=_env(OMP_NUM_THREADS="2"), timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    straight = _fsdp_train(tmp, prepared_100hz, "fsdp", 29910)
    assert straight.returncode == 0, straight.stderr[-4000:]
    crashed = _fsdp_train(tmp, prepared_100hz, "cut", 29911, crash_after=2)
    assert crashed.returncode != 0
    assert (tmp / "cut" / "checkpoints" / "step-2" / "COMPLETE").is_file()
    assert not (tmp / "cut" / "final").exists()
    resumed = _fsdp_train(tmp, prepared_100hz, "cut", 29912, "train.resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    return SimpleNamespace(root=tmp, prepared=prepared_100hz, stderr=straight.stderr)


@pytest.mark.slow
def test_two_fsdp2_processes_follow_one_process_with_twice_the_accumulation(runs):
    assert "forcing FSDP2" in runs.stderr and "FSDP2 units: 2 × LlamaDecoderLayer" in runs.stderr
    one = read_jsonl(runs.root / "one" / "logs" / "train.jsonl")
    two = read_jsonl(runs.root / "fsdp" / "logs" / "train.jsonl")
    assert [r["step"] for r in two] == [r["step"] for r in one] == [1, 2, 3, 4]
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)  # the global norm, not a shard's
        assert b["lr"] == a["lr"]
    assert sum(r["grad_norm"] > MAX_GRAD_NORM for r in two) >= 2, "clipping must be active for this test"
    # the gathered checkpoint has exactly the single-process format
    sharded = load_file(runs.root / "fsdp" / "checkpoints" / "step-2" / "trainable.safetensors")
    single = load_file(runs.root / "one" / "checkpoints" / "step-2" / "trainable.safetensors")
    assert sharded.keys() == single.keys()
    assert all(sharded[k].shape == single[k].shape and sharded[k].dtype == single[k].dtype for k in single)
    # the final parameters match too (BatchNorm statistics differ by design: one process sees both micro-batches)
    for name in SAVED:
        a, b = load_file(runs.root / "one" / "final" / name), load_file(runs.root / "fsdp" / "final" / name)
        assert a.keys() == b.keys(), name
        for key in a:
            if not any(s in key for s in ("running_mean", "running_var", "num_batches_tracked")):
                torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=f"{name}:{key}")


@pytest.mark.slow
def test_sigkill_then_resume_auto_ends_where_the_uninterrupted_run_does(runs):
    straight = read_jsonl(runs.root / "fsdp" / "logs" / "train.jsonl")
    resumed = read_jsonl(runs.root / "cut" / "logs" / "train.jsonl")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight]
    for name in SAVED:
        a, b = load_file(runs.root / "fsdp" / "final" / name), load_file(runs.root / "cut" / "final" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.slow
def test_final_artifact_reloads_in_one_process_with_the_logged_validation_loss(runs):
    from torch.utils.data import DataLoader

    from meit.config import load_recipe
    from meit.data.collator import EcgCollator
    from meit.models import MeitModel
    from meit.training.engine import validation_loss
    from meit.training.setup import build_split_dataset

    run = runs.root / "fsdp"
    logged = read_jsonl(run / "logs" / "train.jsonl")[-1]["val_loss"]  # computed by the sharded model at step 4
    recipe = load_recipe(run / "recipe.yaml", [])
    model = MeitModel.from_pretrained(run / "final")
    dataset = build_split_dataset(recipe, model, recipe.data.eval_split, recipe.data.max_eval_samples)
    loader = DataLoader(dataset, batch_size=recipe.train.batch_size, shuffle=False,
                        collate_fn=EcgCollator(pad_token_id=model.tokenizer.pad_token_id, padding_side="right"))
    one_process = SimpleNamespace(device=torch.device("cpu"), reduce=lambda t, reduction: t)
    # equal here to the last digit; without the buffer sync before evaluation it is off by 2.4e-7 (relative)
    assert validation_loss(model, loader, one_process) == pytest.approx(logged, rel=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["folder", "tiny"])
def test_fsdp2_final_save_gathers_only_what_the_artifact_holds(backbone, tmp_path, prepared_100hz):
    """A LoRA artifact of a re-creatable base gathers the trainable parameters only, not the frozen base;
    the tiny backbone's artifact holds its base, so everything is gathered. Either way the artifact is byte
    for byte what gathering the whole state dict wrote."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    llm = tiny_llama_folder() if backbone == "folder" else "tiny-llama"
    port = 29930 + ["folder", "tiny"].index(backbone)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "recipes" / "accelerate" / "fsdp.yaml"), "--num_processes", "2", "--mixed_precision", "no",
           "--main_process_port", str(port), str(script), str(tmp_path / "probe.json"), "train",
           str(_recipe(tmp_path)), f"data.path={prepared_100hz}",
           *[c for c in COMMON if not c.startswith(("train.max_steps", "train.save_every", "train.eval_every"))],
           "train.max_steps=1", f"model.llm={llm}", f"output_dir={tmp_path / 'run'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(MEIT_FORCE_FSDP_ON_CPU="1"), timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    check_probe(tmp_path / "probe.json", tmp_path / "run", adapter_only=backbone == "folder")


# -- cheap checks -------------------------------------------------------------------------------


def test_accelerate_still_falls_back_to_multi_cpu_for_fsdp_on_cpu(tmp_path):
    """Upstream canary: if accelerate starts selecting FSDP on CPU, MEIT_FORCE_FSDP_ON_CPU can be removed."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, sys\n"
        "from accelerate import Accelerator\n"
        "from accelerate.utils import FullyShardedDataParallelPlugin\n"
        "acc = Accelerator(cpu=True, fsdp_plugin=FullyShardedDataParallelPlugin(fsdp_version=2))\n"
        "open(os.path.join(sys.argv[1], f'rank{acc.process_index}.txt'), 'w').write(\n"
        "    f'{acc.num_processes} {acc.distributed_type.value}')\n")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29919", str(script), str(tmp_path)], capture_output=True, text=True, env=_env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = [(tmp_path / f"rank{i}.txt").read_text() for i in range(2)]
    assert seen == ["2 MULTI_CPU"] * 2, (
        f"{seen}: accelerate's choice on CPU changed; if it is FSDP now, drop MEIT_FORCE_FSDP_ON_CPU")


def test_forcing_hook_refuses_what_it_cannot_do(monkeypatch):
    from meit.training.fsdp import cpu_testing_plugin

    for name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "FSDP_VERSION", "MEIT_FORCE_FSDP_ON_CPU"):
        monkeypatch.delenv(name, raising=False)
    assert cpu_testing_plugin() is None
    monkeypatch.setenv("MEIT_FORCE_FSDP_ON_CPU", "1")
    with pytest.raises(ConfigError, match="needs an FSDP launch"):
        cpu_testing_plugin()
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(ConfigError, match="fsdp_version: 2"):
        cpu_testing_plugin()
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert cpu_testing_plugin().fsdp_version == 2
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match="CPU testing aid"):
        cpu_testing_plugin()


def _fake_fsdp_accelerator(**plugin_kwargs):
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin(**plugin_kwargs)
    return SimpleNamespace(distributed_type=DistributedType.FSDP, state=SimpleNamespace(fsdp_plugin=plugin),
                           is_main_process=True, num_processes=2)


def test_fsdp1_is_refused():
    from meit.training.fsdp import check_fsdp

    with pytest.raises(ConfigError, match="set fsdp_version: 2"):
        check_fsdp(_fake_fsdp_accelerator(fsdp_version=1))
    check_fsdp(_fake_fsdp_accelerator(fsdp_version=2))


def _tiny_backbone_model() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, vocab_size=32)
    return torch.nn.ModuleDict({"encoder": torch.nn.Linear(4, 16), "llm": LlamaForCausalLM(cfg)})


def test_wrap_policy_takes_the_backbones_decoder_layers():
    from meit.training.fsdp import configure_wrapping

    acc = _fake_fsdp_accelerator(fsdp_version=2, auto_wrap_policy="transformer_based_wrap")
    configure_wrapping(acc, _tiny_backbone_model())
    assert acc.state.fsdp_plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"]

    acc = _fake_fsdp_accelerator(fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
                                 transformer_cls_names_to_wrap=["GPT2Block"])
    with pytest.raises(ConfigError, match=r"\['GPT2Block'\].*LlamaDecoderLayer"):
        configure_wrapping(acc, _tiny_backbone_model())


def test_trainable_state_keys_follow_the_single_process_rule():
    from meit.training.checkpoint import trainable_state, trainable_state_keys

    model = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4),
                                torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)
    model[2].requires_grad_(False)  # a frozen BatchNorm: its statistics are not trainable state
    keys = trainable_state_keys(model.state_dict(keep_vars=True))
    assert set(keys) == set(trainable_state(model))
    assert "1.running_mean" in keys and "2.running_mean" not in keys and "0.weight" not in keys


def test_save_pretrained_from_a_given_state_dict_equals_the_live_save(tmp_path):
    """What FSDP's final save relies on: save_pretrained(state_dict=…) writes what a live save writes."""
    from meit.config import ModelConfig
    from meit.models import MeitModel

    torch.manual_seed(0)
    model = MeitModel.build(ModelConfig(llm="tiny-llama", encoder="resnet1d-tiny", lora={"r": 4, "alpha": 8}),
                            data_fs=100, data_seconds=10.0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # LoRA B starts at zero: make every tensor distinctive
    model.save_pretrained(tmp_path / "live")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # what rank 0 sees of a sharded parameter is not the tensor
    model.save_pretrained(tmp_path / "given", state_dict=state)
    for name in SAVED:
        a, b = load_file(tmp_path / "live" / name), load_file(tmp_path / "given" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    del state[next(k for k in state if k.startswith("projector."))]
    with pytest.raises(ModelError, match="state_dict lacks"):
        model.save_pretrained(tmp_path / "bad", state_dict=state)


def test_single_process_resume_refuses_an_fsdp_checkpoint(tmp_path):
    from meit.training.checkpoint import load_checkpoint

    (tmp_path / "optimizer.pt").write_bytes(b"")
    with pytest.raises(TrainingError, match="written under FSDP"):
        load_checkpoint(tmp_path, torch.nn.Linear(2, 2), None, None)
