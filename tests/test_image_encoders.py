"""Image encoders (ConvNeXt, ViT, ResNet from transformers) and the image side of the encoder input contract."""

from __future__ import annotations

import json

import pytest
import torch

from meit.config import ModelConfig
from meit.data.contract import EncoderContract, checked_contract, contract_problems
from meit.errors import ConfigError, DataError, ModelError, OfflineError
from meit.models.encoder_choice import contract_from_config
from meit.models.encoders import ENCODERS, build_encoder, load_encoder_checkpoint, read_encoder_metadata
from meit.models.encoders import artifact as artifact_module
from meit.models.encoders.artifact import write_encoder_artifact
from meit.models.encoders.image import ARCHS, IMAGE_BUILDERS

TOYS = ("convnext-toy-image", "vit-toy-image", "resnet-toy-image")


def _contract(mode: str = "paper-3x4", size=(64, 128), **extra) -> EncoderContract:
    return checked_contract({"fs": 100, "seconds": 10.0, "normalisation": "none", "image_mode": mode,
                             "image_size": size, **extra}, "model.")


# ------------------------------------------------------------------------------------------------
# the contract


def test_defaults_resolve_per_mode_and_signal_contracts_are_unchanged():
    paper = _contract(size=None)
    assert paper.image_size == (224, 352) and paper.input_shape == (3, 224, 352)
    assert paper.image_mean == (0.485, 0.456, 0.406) and paper.image_std == (0.229, 0.224, 0.225)
    gaf = _contract("gaf", 96)
    assert gaf.input_shape == (12, 96, 96) and gaf.image_mean == (0.0,) * 12 and gaf.image_std == (1.0,) * 12
    signal = EncoderContract(fs=100, seconds=10.0)
    assert not signal.is_image and signal.input_shape == (12, 1000)
    assert set(signal.to_dict()) == {"leads", "fs", "seconds", "normalisation", "bandpass", "bandpass_order",
                                     "notch_hz", "baseline"}  # written exactly as before images existed
    assert "rendered as a paper-3x4 image 224×352 px at 33 dpi" in paper.describe()
    assert paper.image_dpi == 33 and gaf.image_dpi is None  # the page drawn at about the image's height


@pytest.mark.parametrize(("override", "key"), [
    ({"image_size": 8}, "model.image_size"),
    ({"image_size": [0, 224]}, "model.image_size"),
    ({"image_size": "big"}, "model.image_size"),
    ({"image_mode": "photo"}, "model.image_mode"),
    ({"image_dpi": 5}, "model.image_dpi"),
    ({"image_mode": "gaf", "image_dpi": 100}, "model.image_dpi"),
    ({"image_mean": [0.5, 0.5]}, "model.image_mean"),
    ({"image_std": [0.2, 0.0, 0.2]}, "model.image_std"),
    ({"normalisation": "zscore"}, "model.normalisation"),
    ({"image_augment": {"wobble": 0.3}}, "model.image_augment.wobble"),
    ({"image_augment": {"blur": 1.5}}, "model.image_augment.blur"),
    ({"image_mode": "gaf", "image_size": [64, 128]}, "model.image_size"),
    ({"image_mode": "rp", "image_size": 64, "image_augment": {"blur": 0.2}}, "model.image_augment"),
])
def test_bad_image_contract_is_a_typed_error_naming_the_key(override, key):
    values = {"fs": 100, "seconds": 10.0, "normalisation": "none", "image_mode": "paper-3x4", "image_size": 64,
              **override}
    with pytest.raises(ConfigError, match=f"'{key}'"):
        checked_contract(values, "model.")


def test_image_fields_without_an_image_mode_are_refused():
    with pytest.raises(ConfigError, match=r"'model.image_size' is set but 'model.image_mode' is none"):
        contract_from_config(ModelConfig(encoder="resnet1d-tiny", image_size=224), data_fs=100, data_seconds=10.0)
    with pytest.raises(ConfigError, match=r"'ecg.image_augment' is set"):
        checked_contract({"fs": 100, "seconds": 10.0, "image_augment": {"blur": 0.3}}, "ecg.")


def test_recipe_keys_build_the_contract():
    cfg = ModelConfig(encoder="convnext-toy-image", normalisation="none", image_mode="paper-6x2",
                      image_size=[64, 96], image_dpi=80, image_augment={"blur": 0.4, "noise": 0.0})
    contract = contract_from_config(cfg, data_fs=100, data_seconds=10.0)
    assert contract.input_shape == (3, 64, 96) and contract.image_dpi == 80
    assert contract.augmentation == {"blur": 0.4}  # zero strengths dropped
    # augmentation is how a run trains, not what the weights read: contracts compare equal without it
    assert contract == contract_from_config(cfg.model_copy(update={"image_augment": {}}), data_fs=100,
                                            data_seconds=10.0)


def test_encoder_and_contract_must_agree_on_images():
    with pytest.raises(ModelError, match="reads the signal, but the contract asks for a paper-3x4 image"):
        build_encoder("resnet1d-tiny", _contract())
    with pytest.raises(ModelError, match=r"set model.image_mode"):
        build_encoder("convnext-toy-image", EncoderContract(fs=100, seconds=10.0))


# ------------------------------------------------------------------------------------------------
# encoders


def test_registry_has_every_family_and_size():
    assert set(IMAGE_BUILDERS) <= set(ENCODERS)
    assert {ARCHS[n].family for n in IMAGE_BUILDERS} == {"convnext", "vit", "resnet"}
    for name in ("convnext-tiny-image", "vit-small-image", "resnet18-image", *TOYS):
        assert name in ENCODERS


@pytest.mark.parametrize("name", TOYS)
@pytest.mark.parametrize(("mode", "size", "tokens"), [("paper-3x4", (64, 128), {"vit": 32, "other": 128}),
                                                      ("gaf", (64, 64), {"vit": 16, "other": 64})])
def test_output_shapes(name, mode, size, tokens):
    contract = _contract(mode, size)
    encoder = build_encoder(name, contract).eval()
    images = torch.randn(2, *contract.input_shape)
    encoder.check_input(images)
    seq, vector = encoder.encode(images)
    expected = tokens["vit" if name.startswith("vit") else "other"]
    assert seq.shape == (2, expected, encoder.out_dim) and vector.shape == (2, encoder.out_dim)
    torch.testing.assert_close(encoder(images, pooled=True)[:, 0], vector)
    torch.testing.assert_close(encoder(images), seq)
    with pytest.raises(DataError, match="expected images"):
        encoder.check_input(torch.randn(2, 12, 1000))
    with pytest.raises(DataError, match=r"image batch must be floating point, got torch\.uint8"):
        encoder.check_input(torch.zeros(2, *contract.input_shape, dtype=torch.uint8))
    images[1, 0, 3, 5] = float("inf")
    with pytest.raises(DataError, match="image batch contains NaN or inf"):
        encoder.check_input(images)


@pytest.mark.parametrize("name", sorted(IMAGE_BUILDERS))
def test_every_registered_image_encoder_maps_images_to_tokens(name):
    contract = _contract("gaf", (64, 64))
    encoder = build_encoder(name, contract).eval()
    with torch.no_grad():
        tokens, pooled = encoder(torch.randn(2, *contract.input_shape)), encoder(torch.randn(2, *contract.input_shape),
                                                                                 pooled=True)
    assert tokens.dim() == 3 and tokens.shape[0] == 2 and tokens.shape[1] > 1 and tokens.shape[2] == encoder.out_dim
    assert pooled.shape == (2, 1, encoder.out_dim)


def test_real_sizes_build_with_their_published_widths():
    contract = _contract(size=(224, 224))
    widths = {"convnext-tiny-image": 768, "vit-small-image": 384, "resnet18-image": 512}
    for name, width in widths.items():
        encoder = build_encoder(name, contract)
        assert encoder.out_dim == width
    convnext = sum(p.numel() for p in build_encoder("convnext-tiny-image", contract).parameters())
    assert 27e6 < convnext < 29e6  # ConvNeXt-T without its ImageNet head: 27.8M


def test_vit_needs_a_size_divisible_by_its_patch():
    with pytest.raises(ModelError, match="divisible by 16"):
        build_encoder("vit-toy-image", _contract(size=(60, 128)))


# ------------------------------------------------------------------------------------------------
# artifacts


def test_image_artifact_round_trip(tmp_path):
    contract = _contract(image_augment={"rotation": 0.2, "jpeg": 0.5})
    encoder = build_encoder("resnet-toy-image", contract)
    out = write_encoder_artifact(tmp_path / "enc", "resnet-toy-image", encoder, contract, source={"by": "test"})
    data = json.loads((out / "encoder.json").read_text())
    assert data["version"] == 3
    assert data["contract"]["image_mode"] == "paper-3x4" and data["contract"]["image_size"] == [64, 128]
    assert data["contract"]["image_augment"] == {"jpeg": 0.5, "rotation": 0.2}
    meta = read_encoder_metadata(out)
    assert meta.contract == contract and meta.contract.augmentation == contract.augmentation
    again = build_encoder("resnet-toy-image", contract)
    load_encoder_checkpoint(again, out)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    # the same weights under another image contract are refused with the overrides that fix it
    other = build_encoder("resnet-toy-image", _contract(size=(64, 96)))
    with pytest.raises(ModelError, match=r"model.image_mode=paper-3x4 'model.image_size=\[64,128\]'"):
        load_encoder_checkpoint(other, out)


def test_a_reader_of_version_2_refuses_an_image_artifact(tmp_path, monkeypatch):
    contract = _contract()
    out = write_encoder_artifact(tmp_path / "enc", "convnext-toy-image", build_encoder("convnext-toy-image", contract),
                                 contract)
    monkeypatch.setattr(artifact_module, "ARTIFACT_VERSION", 2)  # meit as it was before the image side
    with pytest.raises(ModelError, match=r"'version' 3 was written by a newer meit .*upgrade meit"):
        read_encoder_metadata(out)
    monkeypatch.undo()
    # and a file that claims an older version but carries an image contract was not written by meit
    data = json.loads((out / "encoder.json").read_text())
    (out / "encoder.json").write_text(json.dumps({**data, "version": 2}))
    with pytest.raises(ModelError, match="needs format version 3"):
        read_encoder_metadata(out)


def test_artifact_problems_name_the_contract_key():
    data = {**_contract().to_dict(), "image_std": [1, 1]}
    assert any("'contract.image_std'" in p for p in contract_problems(data))


# ------------------------------------------------------------------------------------------------
# weights from transformers folders and hub ids


def test_transformers_folder_loads_strictly_and_drops_the_classifier(tmp_path):
    from transformers import ConvNextConfig, ConvNextForImageClassification

    contract = _contract()
    encoder = build_encoder("convnext-toy-image", contract)
    config = ConvNextConfig(**ARCHS["convnext-toy-image"].config, num_stages=2, num_channels=3, num_labels=5)
    torch.manual_seed(3)
    source = ConvNextForImageClassification(config)
    source.save_pretrained(tmp_path / "hf")
    load_encoder_checkpoint(encoder, tmp_path / "hf")
    for key, value in source.convnext.state_dict().items():
        assert torch.equal(encoder.backbone.state_dict()[key], value), key
    # another architecture is refused with the keys that do not fit
    with pytest.raises(ModelError, match="wrong shape"):
        load_encoder_checkpoint(build_encoder("convnext-tiny-image", contract), tmp_path / "hf")
    with pytest.raises(ModelError, match="is a 'convnext' checkpoint; this encoder is a vit"):
        load_encoder_checkpoint(build_encoder("vit-toy-image", contract), tmp_path / "hf")


def test_hub_id_offline_and_uncached_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    encoder = build_encoder("vit-toy-image", _contract())
    with pytest.raises(OfflineError, match=r"HF_HUB_OFFLINE is set .*\(huggingface-cli download nobody/no-such-vit\)"):
        load_encoder_checkpoint(encoder, "nobody/no-such-vit")


# ------------------------------------------------------------------------------------------------
# the whole model: both fusions, any projector, artifact reload


@pytest.mark.parametrize(("fusion", "projector", "tokens"), [("kv", "mlp", 1), ("prefix", "resampler", 4),
                                                              ("prefix", "linear", 2)])
def test_meit_model_with_an_image_encoder(fusion, projector, tokens, tmp_path):
    from meit.models import MeitModel

    cfg = ModelConfig(llm="tiny-llama", encoder="vit-toy-image", fusion=fusion, projector=projector,
                      num_ecg_tokens=tokens, normalisation="none", image_mode="paper-3x4", image_size=[64, 128],
                      lora={"r": 4, "alpha": 8})
    torch.manual_seed(0)
    model = MeitModel.build(cfg, data_fs=100, data_seconds=10.0)
    assert model.contract.input_shape == (3, 64, 128)
    images = torch.randn(2, 3, 64, 128)
    assert model.encode_ecg(images).shape[:2] == (2, model.num_ecg_tokens)
    length = 10
    ids = torch.randint(10, 100, (2, length))
    ecg_mask = torch.zeros(2, length, dtype=torch.bool)
    start = 0 if fusion == "kv" else 1
    ecg_mask[:, start:start + model.num_ecg_tokens] = True
    ids[ecg_mask] = model.ecg_placeholder_id
    out = model(images, ids, torch.ones_like(ids), ecg_mask, labels=ids.clone())
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert any(p.grad is not None for p in model.encoder.parameters())
    with pytest.raises(Exception, match="image encoder's input contract"):
        model(torch.randn(2, 12, 1000), ids, torch.ones_like(ids), ecg_mask)
    model.save_pretrained(tmp_path / "m")
    again = MeitModel.from_pretrained(tmp_path / "m")
    assert again.contract == model.contract
    model.eval()
    torch.testing.assert_close(again.encode_ecg(images), model.encode_ecg(images))
