"""Atomic checkpoints of the trainable state; resume finds the newest complete one."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from meit.errors import TrainingError
from meit.training.checkpoint import (
    COMPLETE_MARKER,
    complete_checkpoints,
    find_resume_checkpoint,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    return model, opt, sched


def _step(model, opt, sched):
    loss = model(torch.randn(3, 4)).pow(2).sum()
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def test_save_load_round_trip_restores_everything(tmp_path):
    model, opt, sched = _setup()
    _step(model, opt, sched)
    path = save_checkpoint(tmp_path, 1, model, opt, sched, {"epoch": 0, "batch_in_epoch": 1})
    expected_rng = (torch.rand(1), np.random.rand(), random.random())
    _step(model, opt, sched)  # continue the original

    fresh, fopt, fsched = _setup(seed=5)
    frozen_before = fresh[0].weight.clone()
    progress = load_checkpoint(path, fresh, fopt, fsched)
    assert progress == {"epoch": 0, "batch_in_epoch": 1, "step": 1}
    assert (torch.rand(1), np.random.rand(), random.random()) == expected_rng
    assert torch.equal(fresh[0].weight, frozen_before), "frozen weights are not in the checkpoint"
    assert fsched.get_last_lr() == [5e-3]
    assert set(torch.load(path / "training_state.pt", weights_only=True)) == {"optimizer", "scheduler", "rng"}


def test_keep_last_prunes_and_incomplete_folders_are_ignored(tmp_path):
    model, opt, sched = _setup()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path / "checkpoints", step, model, opt, sched, {"epoch": 0, "batch_in_epoch": step},
                        keep_last=2)
    assert [p.name for p in complete_checkpoints(tmp_path / "checkpoints")] == ["step-2", "step-3"]
    half = tmp_path / "checkpoints" / "step-9"
    half.mkdir()  # a crash mid-save: no COMPLETE marker
    assert find_resume_checkpoint(tmp_path, "auto").name == "step-3"
    with pytest.raises(TrainingError, match=COMPLETE_MARKER):
        find_resume_checkpoint(tmp_path, str(half))
    assert find_resume_checkpoint(tmp_path / "empty", "auto") is None
    assert find_resume_checkpoint(tmp_path, None) is None


# -- strict loading, per-rank RNG --------------------------------------------------------------


def test_load_refuses_missing_and_unexpected_tensors_and_names_them(tmp_path):
    model, opt, sched = _setup()  # trains 1.weight and 1.bias
    path = save_checkpoint(tmp_path, 1, model, opt, sched, {"epoch": 0, "batch_in_epoch": 1})

    more, mopt, msched = _setup()
    more[0].weight.requires_grad_(True)  # this run also trains 0.weight, which the checkpoint lacks
    with pytest.raises(TrainingError, match=r"missing 1 tensors this run trains, e\.g\. \['0\.weight'\]"):
        load_checkpoint(path, more, mopt, msched)

    fewer, fopt, fsched = _setup()
    fewer[1].bias.requires_grad_(False)  # the checkpoint holds 1.bias, which this run does not train
    with pytest.raises(TrainingError, match=r"1 tensors this run does not train, e\.g\. \['1\.bias'\]"):
        load_checkpoint(path, fewer, fopt, fsched)


def _rng_after(seed: int):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return rng_state()


def test_every_ranks_rng_is_saved_and_each_rank_gets_its_own_back(tmp_path):
    model, opt, sched = _setup()
    states = [_rng_after(1), _rng_after(2)]  # two ranks that drew different amounts of randomness
    path = save_checkpoint(tmp_path, 1, model, opt, sched, {"epoch": 0, "batch_in_epoch": 1}, rng_states=states)
    draws = []
    for state in states:
        restore_rng(state)
        draws.append((torch.rand(1), np.random.rand(), random.random()))
    for rank in (0, 1):
        load_checkpoint(path, *_setup(seed=9), process_index=rank, num_processes=2)
        assert (torch.rand(1), np.random.rand(), random.random()) == draws[rank]
    with pytest.raises(TrainingError, match="holds 2 random-generator states; this run has 1 process"):
        load_checkpoint(path, *_setup(seed=9))


def test_cuda_generator_states_are_saved_and_restored_when_cuda_is_available(monkeypatch):
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.tensor([1], dtype=torch.uint8),
                                                                   torch.tensor([2], dtype=torch.uint8)])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    state = rng_state()
    assert [int(t) for t in state["cuda"]] == [1, 2]
    restore_rng(state)
    assert [[int(t) for t in r] for r in restored] == [[1, 2]]


def test_deepspeed_checkpoint_names_are_checked_against_the_trainable_parameters(tmp_path):
    from collections import OrderedDict

    from meit.training.sharded_checkpoint import check_sharded_checkpoint

    model, _, _ = _setup()  # trains 0.bias, 1.weight, 1.bias
    with pytest.raises(TrainingError, match="not written under DeepSpeed"):
        check_sharded_checkpoint(tmp_path, model)
    (tmp_path / "pytorch_model").mkdir()
    shapes = [OrderedDict([("0.bias", torch.Size([4])), ("1.weight", torch.Size([2, 4]))]),
              OrderedDict([("0.weight", torch.Size([4, 4]))])]  # DeepSpeed lists them per parameter group
    torch.save({"param_shapes": shapes}, tmp_path / "pytorch_model" / "mp_rank_00_model_states.pt")
    with pytest.raises(TrainingError, match=r"missing 1 parameters this run trains, e\.g\. \['1\.bias'\]; 1 "
                                            r"parameters this run does not train, e\.g\. \['0\.weight'\]"):
        check_sharded_checkpoint(tmp_path, model)
    model[0].weight.requires_grad_(True)
    model[1].bias.requires_grad_(False)
    check_sharded_checkpoint(tmp_path, model)


def test_placeholders_refuse_to_be_read():
    from meit.training.checkpoint import meta_placeholders

    state = {"a": torch.ones(2, 3), "b": torch.zeros(4)}
    filled = meta_placeholders(state, {"a": state["a"]})
    assert filled["a"] is state["a"] and filled["b"].shape == (4,) and filled["b"].is_meta
    with pytest.raises(NotImplementedError, match="meta"):
        filled["b"].to("cpu")


# -- run identity and the choice of checkpoint -------------------------------------------------


def _recipe(*overrides):
    from meit.config import load_recipe

    return load_recipe(None, ["data.path=/data", "output_dir=/runs/a", *overrides])


def test_run_settings_leave_out_exactly_what_a_resume_may_change():
    from meit.training.resume import run_identity, run_settings

    base = run_identity(run_settings(_recipe()), 2)
    same = run_identity(run_settings(_recipe("output_dir=/moved", "train.resume=auto", "train.log_every=1",
                                             "train.trackers=[]", "train.save_every=5", "train.keep_last=1",
                                             "train.eval_every=3", "train.sample_reports=0", "eval.max_new_tokens=9",
                                             "data.max_eval_samples=4")), 2)
    assert same == base
    for change in ("train.lr=1e-3", "train.max_steps=100", "seed=1", "model.lora.r=8", "data.path=/other",
                   "train.grad_accum=2", "train.mixed_precision=no"):
        other = run_identity(run_settings(_recipe(change)), 2)
        assert other["recipe_sha256"] != base["recipe_sha256"], change
    assert "train.lr" in base["settings"] and "train.resume" not in base["settings"]
    assert "output_dir" not in base["settings"] and not any(k.startswith("eval.") for k in base["settings"])


def _checkpoint(root: Path, step: int, identity: dict | None) -> Path:
    from meit.training.checkpoint import publish_checkpoint

    tmp = root / "checkpoints" / f".tmp-step-{step}"
    tmp.mkdir(parents=True)
    progress = {"epoch": 0, "batch_in_epoch": step}
    if identity is not None:
        progress["run"] = identity
    return publish_checkpoint(tmp, root / "checkpoints" / f"step-{step}", {**progress, "step": step}, None)


def test_checkpoints_of_another_run_are_never_continued_or_mixed(tmp_path):
    from meit.training.resume import choose_checkpoint, run_identity, run_settings

    mine = run_identity(run_settings(_recipe()), 1)
    other = run_identity(run_settings(_recipe("train.lr=1e-3")), 1)
    assert choose_checkpoint(tmp_path, None, mine) is None
    assert choose_checkpoint(tmp_path, "auto", mine) is None  # nothing to resume: a fresh start

    first = _checkpoint(tmp_path, 45, mine)
    assert choose_checkpoint(tmp_path, "auto", mine) == first
    with pytest.raises(TrainingError, match=r"already holds checkpoints of an earlier run \(step-45\).*"
                                            r"train\.resume=auto.*fresh output_dir"):
        choose_checkpoint(tmp_path, None, mine)  # a fresh run would mix with them
    with pytest.raises(TrainingError, match=r"train\.resume=auto: checkpoint .*step-45 belongs to another run "
                                            r"\(train\.lr: 2e-05 in the checkpoint, 0\.001 now\).*fresh output_dir"):
        choose_checkpoint(tmp_path, "auto", other)
    with pytest.raises(TrainingError, match=r"written by 1 process.*this run has 2"):
        choose_checkpoint(tmp_path, str(first), run_identity(run_settings(_recipe()), 2))

    _checkpoint(tmp_path, 90, mine)
    with pytest.raises(TrainingError, match=r"continues from step 45, but .* holds later checkpoints \(step-90\)"):
        choose_checkpoint(tmp_path, str(first), mine)  # an abandoned branch would be resumed later by auto

    stale = tmp_path / "old"
    _checkpoint(stale, 3, None)
    with pytest.raises(TrainingError, match="records no run identity"):
        choose_checkpoint(stale, "auto", mine)


def test_the_log_is_cut_back_to_the_resumed_step(tmp_path):
    from meit.training.logs import JsonlLog, read_jsonl
    from meit.training.resume import cut_log

    path = tmp_path / "logs" / "train.jsonl"
    log = JsonlLog(path)
    for step in range(1, 7):
        log.write({"step": step, "loss": 1.0 / step})
    with open(path, "a") as handle:
        handle.write('{"step": 7, "lo')  # killed mid-line
    cut_log(path, 4)
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3, 4]
    cut_log(path, 0)
    assert read_jsonl(path) == []
    cut_log(tmp_path / "absent.jsonl", 3)
