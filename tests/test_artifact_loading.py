"""What a saved model folder may and may not decide when it is loaded again (issue 19, items 6 and 11).

A folder is data: it must not switch on remote code execution by itself, and it must rebuild exactly
the encoder that was trained (builder settings included), not the registry's defaults.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from meit.config import ModelConfig
from meit.data.contract import EncoderContract
from meit.models import MeitModel
from meit.models.encoders import build_encoder, write_encoder_artifact

from .test_models_fusion import make_batch, make_model


def _logits(model: MeitModel) -> torch.Tensor:
    torch.manual_seed(3)
    ecg, ids, am, em, _ = make_batch(model, [5, 3])
    with torch.no_grad():
        return model(ecg, ids, am, em).logits


def test_a_saved_folder_cannot_switch_on_remote_code(tmp_path, caplog):
    saved = make_model("tiny-llama", "kv").save_pretrained(tmp_path / "m")
    meta_file = saved / "meit_model.json"
    meta = json.loads(meta_file.read_text())
    meta["model_config"]["trust_remote_code"] = True  # what a tampered (or careless) folder says
    meta_file.write_text(json.dumps(meta))

    with caplog.at_level(logging.WARNING, logger="meit.models.model_artifact"):
        loaded = MeitModel.from_pretrained(saved)
    assert loaded.cfg.trust_remote_code is False
    assert "trust_remote_code=True" in caplog.text and "--trust-remote-code" in caplog.text
    # only the caller can turn it on
    assert MeitModel.from_pretrained(saved, trust_remote_code=True).cfg.trust_remote_code is True


def test_encoder_builder_settings_survive_save_and_load(tmp_path):
    """An encoder built with non-default settings (here a narrower ResNet) reloads as that encoder."""
    contract = EncoderContract(fs=50, seconds=2.0, normalisation="zscore")
    torch.manual_seed(0)
    artifact = write_encoder_artifact(tmp_path / "enc", "resnet1d-tiny",
                                      build_encoder("resnet1d-tiny", contract, base_width=4), contract,
                                      kwargs={"base_width": 4})
    cfg = ModelConfig(llm="tiny-llama", projector="mlp", fusion="kv", encoder_checkpoint=str(artifact),
                      lora={"r": 4, "alpha": 8, "dropout": 0.0})
    model = MeitModel.build(cfg, data_fs=50, data_seconds=2.0).eval()
    assert model.encoder.builder_kwargs == {"base_width": 4}

    saved = model.save_pretrained(tmp_path / "m")
    assert json.loads((saved / "meit_model.json").read_text())["encoder_kwargs"] == {"base_width": 4}
    again = MeitModel.from_pretrained(saved).eval()
    assert again.encoder.builder_kwargs == {"base_width": 4}
    assert torch.equal(_logits(model), _logits(again))


def test_init_from_refuses_model_keys_it_would_ignore_and_applies_load_time_ones(tmp_path):
    from meit.config import load_recipe
    from meit.errors import ConfigError
    from meit.training.setup import build_model

    saved = make_model("tiny-llama", "kv").save_pretrained(tmp_path / "m")
    start = [f"train.init_from={saved}", "data.fs=50", "data.seconds=2"]
    with pytest.raises(ConfigError, match=r"model.fusion='prefix' \(artifact: 'kv'\).*model.llm='tiny-gpt2'"):
        build_model(load_recipe(None, [*start, "model.llm=tiny-gpt2", "model.fusion=prefix"]))
    agreeing = build_model(load_recipe(None, [*start, "model.llm=tiny-llama", "model.max_length=64"]))
    assert agreeing.cfg.llm == "tiny-llama" and agreeing.cfg.max_length == 64  # max_length: a load-time key


def test_a_misshaped_weight_file_is_named_not_a_raw_size_error(tmp_path):
    from safetensors.torch import load_file, save_file

    from meit.errors import ModelError

    saved = make_model("tiny-llama", "kv").save_pretrained(tmp_path / "m")
    projector = load_file(str(saved / "projector.safetensors"))
    name = next(iter(projector))
    projector[name] = torch.zeros(*[size + 1 for size in projector[name].shape])
    save_file(projector, str(saved / "projector.safetensors"))
    with pytest.raises(ModelError, match=rf"projector.safetensors does not fit .*wrong shape: {name} \(file"):
        MeitModel.from_pretrained(saved)


def test_provenance_hashes_the_weights_not_only_the_config(tmp_path, monkeypatch):
    """Two artifacts with the same meit_model.json but different weights get different provenance."""
    from meit.evaluation import provenance as prov
    from meit.hashing import file_sha256

    saved = make_model("tiny-llama", "kv").save_pretrained(tmp_path / "m")
    hashes = prov.weights_sha256(saved)
    assert hashes["projector.safetensors"] == file_sha256(saved / "projector.safetensors")
    assert "encoder.safetensors" in hashes and any(k.startswith("adapter/") for k in hashes)
    (saved / "projector.safetensors").write_bytes(b"changed weights")
    assert prov.weights_sha256(saved)["projector.safetensors"] != hashes["projector.safetensors"]
    record = prov.provenance(str(saved), str(tmp_path), "test", {})
    assert record["checkpoint_weights_sha256"]["projector.safetensors"] == file_sha256(saved / "projector.safetensors")
    monkeypatch.setattr(prov, "WEIGHT_HASH_LIMIT", 1)  # a huge artifact: base weights listed by size only
    big = prov.weights_sha256(saved)
    assert all(v.startswith("not hashed") for k, v in big.items() if k.startswith("llm/"))
    assert big["encoder.safetensors"] == hashes["encoder.safetensors"]
