"""The encoder reads a prepared dataset at its stored rate unless the recipe asks otherwise (issue 19, item 8).

A 100 Hz preparation with a recipe that says nothing about ``data.fs`` once became a 500 Hz encoder input
(5× upsampled, silently). Now "nothing said" means "as prepared".
"""

from __future__ import annotations

import json

import pytest

from meit.config import load_recipe
from meit.data.stored_rate import data_rate, stored_rate
from meit.errors import ConfigError, DataError
from meit.pretrain.config import PretrainRecipe


def test_the_stored_rate_is_the_default(prepared_100hz):
    assert stored_rate(prepared_100hz) == (100, 10.0)
    recipe = load_recipe(None, [f"data.path={prepared_100hz}"])
    assert (recipe.data.fs, recipe.data.seconds) == (None, None)
    assert data_rate(recipe.data) == (100, 10.0)
    pre = load_recipe(None, [f"data.path={prepared_100hz}"], schema=PretrainRecipe)
    assert (pre.ecg.contract(pre.data).fs, pre.ecg.contract(pre.data).seconds) == (100, 10.0)


def test_an_explicit_rate_wins_and_each_key_is_independent(prepared_100hz):
    assert data_rate(load_recipe(None, [f"data.path={prepared_100hz}", "data.fs=50"]).data) == (50, 10.0)
    assert data_rate(load_recipe(None, [f"data.path={prepared_100hz}", "data.seconds=5"]).data) == (100, 5.0)
    assert data_rate(load_recipe(None, ["data.fs=250", "data.seconds=8"]).data) == (250, 8.0)  # no data needed


def test_no_rate_and_no_data_names_both_ways_out():
    with pytest.raises(ConfigError, match=r"data.fs and data.seconds not set and no data.path.*data.fs=100"):
        data_rate(load_recipe(None, []).data)


def test_a_dataset_without_manifest_is_read_from_its_rows(prepared_100hz, tmp_path):
    from datasets import load_from_disk

    copy = tmp_path / "no_manifest"
    load_from_disk(str(prepared_100hz)).save_to_disk(str(copy))
    assert not (copy / "manifest.json").exists()
    assert stored_rate(copy) == (100, 10.0)


def test_a_broken_manifest_is_named(prepared_100hz, tmp_path):
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(prepared_100hz, copy)
    meta = json.loads((copy / "manifest.json").read_text())
    del meta["fs"]
    (copy / "manifest.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"manifest.json: cannot read the stored rate"):
        stored_rate(copy)


def test_training_builds_the_encoder_at_the_stored_rate(prepared_100hz):
    from meit.training.setup import build_model

    recipe = load_recipe(None, [f"data.path={prepared_100hz}", "model.llm=tiny-llama", "model.encoder=resnet1d-tiny",
                                "model.lora.r=4"])
    assert build_model(recipe).contract.fs == 100
