"""accelerate's trackers receive the run's figures: TensorBoard (default) and Weights & Biases (offline)."""

from __future__ import annotations

import pytest

from meit.config import load_recipe
from meit.training import train

TINY = ["model.llm=tiny-llama", "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8",
        "model.max_length=96", "train.batch_size=4", "train.max_steps=2", "train.log_every=1", "data.fs=100",
        "train.eval_every=2", "data.max_eval_samples=4", "train.sample_reports=0"]


def test_tensorboard_gets_loss_lr_and_val_loss(tmp_path, prepared_100hz):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = load_recipe(None, [f"data.path={prepared_100hz}", f"output_dir={tmp_path / 'run'}", *TINY,
                                "train.trackers=[tensorboard]"])
    result = train(recipe, progress=False)
    folders = sorted({f.parent for f in (tmp_path / "run" / "logs").rglob("events.out.tfevents.*")})
    assert folders, "no TensorBoard event file"
    scalars = {}
    for folder in folders:  # accelerate writes hyperparameters and scalars to separate event files
        acc = EventAccumulator(str(folder))
        acc.Reload()
        scalars |= {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}
    assert {"loss", "lr", "val_loss"} <= set(scalars), set(scalars)
    assert [e.step for e in scalars["loss"]] == [1, 2]
    assert scalars["loss"][-1].value == pytest.approx(result.losses[-1], rel=1e-6)


def test_wandb_offline_run_records_config_and_metrics(tmp_path, prepared_100hz, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    recipe = load_recipe(None, [f"data.path={prepared_100hz}", f"output_dir={tmp_path / 'run'}", *TINY,
                                "train.trackers=[wandb]"])
    train(recipe, progress=False)
    import wandb

    wandb.teardown()  # wait for wandb's service process to flush the run file (it lagged on a loaded machine)
    runs = sorted(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1, list(tmp_path.rglob("*"))
    # the offline log is a stream of protobuf records: keys and JSON values are stored as plain UTF-8
    data = runs[0].read_bytes()
    for needle in (b"val_loss", b"samples_per_s", b"model.llm", b"tiny-llama", b"train.max_steps"):
        assert needle in data, needle
