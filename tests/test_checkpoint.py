"""Atomic checkpoints of the trainable state; resume finds the newest complete one."""

import random

import numpy as np
import pytest
import torch

from meit.errors import TrainingError
from meit.training.checkpoint import (
    COMPLETE_MARKER,
    complete_checkpoints,
    find_resume_checkpoint,
    load_checkpoint,
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
