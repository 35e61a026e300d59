"""Importing MERL / ECGFounder checkpoints: upstream key layouts, nesting, artifact format, model build, CLI.

The key names and shapes below are written out from reading upstream source — never derived from our own
modules — so a drift between our encoders and the published layouts fails here:
MERL  github.com/cheliu-computation/MERL-ICML2024 @ 38799b7 (utils/resnet1d.py, utils/vit1d.py,
      utils/utils_builder.py ECGCLIP, utils/utils_trainer.py torch.save calls);
ECGFounder  github.com/PKUDigitalHealth/ECGFounder @ 04edac7 (net1d.py; config in finetune_model.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator

import pytest
import torch
from safetensors.torch import load_file, save_file

from meit.config import ModelConfig
from meit.errors import ConfigError, ModelError
from meit.models import MeitModel
from meit.models.encoders import (
    EncoderContract,
    build_encoder,
    load_encoder_checkpoint,
    read_encoder_metadata,
    write_encoder_artifact,
)
from meit.models.encoders.ecgfounder import ECGFOUNDER_CONTRACT
from meit.models.encoders.imports import KINDS, import_checkpoint
from meit.models.encoders.merl import MERL_CONTRACT
from meit.publish import OutputError

from .test_models_fusion import make_batch

KeyTable = Iterator[tuple[str, tuple[int, ...]]]

# --------------------------------------------------------------------------------------------- upstream layouts


def bn(name: str, c: int) -> KeyTable:
    """A BatchNorm1d's state: weight, bias, running_mean, running_var, num_batches_tracked (scalar)."""
    yield from ((f"{name}.weight", (c,)), (f"{name}.bias", (c,)), (f"{name}.running_mean", (c,)),
                (f"{name}.running_var", (c,)), (f"{name}.num_batches_tracked", ()))


def merl_resnet_keys(depth: int) -> KeyTable:
    """MERL utils/resnet1d.py ResNet(block, num_blocks) state dict, including its unused 10-class ``linear``."""
    layout = {18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False), 50: ((3, 4, 6, 3), True),
              101: ((3, 4, 23, 3), True)}
    blocks, bottleneck = layout[depth]
    expansion = 4 if bottleneck else 1
    yield "conv1.weight", (64, 12, 7)
    yield from bn("bn1", 64)
    cin = 64
    for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
        for j in range(n):
            stride = 2 if (i > 0 and j == 0) else 1
            p = f"layer{i + 1}.{j}"
            if bottleneck:
                yield f"{p}.conv1.weight", (width, cin, 1)
                yield from bn(f"{p}.bn1", width)
                yield f"{p}.conv2.weight", (width, width, 3)
                yield from bn(f"{p}.bn2", width)
                yield f"{p}.conv3.weight", (width * 4, width, 1)
                yield from bn(f"{p}.bn3", width * 4)
            else:
                yield f"{p}.conv1.weight", (width, cin, 3)
                yield from bn(f"{p}.bn1", width)
                yield f"{p}.conv2.weight", (width, width, 3)
                yield from bn(f"{p}.bn2", width)
            if stride != 1 or cin != width * expansion:
                yield f"{p}.shortcut.0.weight", (width * expansion, cin, 1)
                yield from bn(f"{p}.shortcut.1", width * expansion)
            cin = width * expansion
    yield "linear.weight", (10, 512 * expansion)
    yield "linear.bias", (10,)


MERL_VIT_CONFIGS = {"tiny": (192, 12, 3, 768), "small": (384, 12, 6, 1536), "middle": (512, 12, 8, 2048),
                    "base": (768, 12, 12, 3072)}


def merl_vit_keys(size: str) -> KeyTable:
    """MERL utils/vit1d.py ViT(num_leads=12, seq_len=5000, patch_size=50, dim_head=64): no CLS token, Identity head."""
    width, depth, heads, mlp = MERL_VIT_CONFIGS[size]
    inner = heads * 64
    yield "to_patch_embedding.weight", (width, 12, 50)
    yield "pos_embedding", (1, 100, width)
    for i in range(depth):
        b = f"block{i}"
        yield from ((f"{b}.attn.norm.weight", (width,)), (f"{b}.attn.norm.bias", (width,)))
        yield from ((f"{b}.attn.fn.to_qkv.weight", (3 * inner, width)), (f"{b}.attn.fn.to_qkv.bias", (3 * inner,)))
        yield from ((f"{b}.attn.fn.to_out.0.weight", (width, inner)), (f"{b}.attn.fn.to_out.0.bias", (width,)))
        yield from ((f"{b}.ff.norm.weight", (width,)), (f"{b}.ff.norm.bias", (width,)))
        yield from ((f"{b}.ff.fn.net.0.weight", (mlp, width)), (f"{b}.ff.fn.net.0.bias", (mlp,)))
        yield from ((f"{b}.ff.fn.net.3.weight", (width, mlp)), (f"{b}.ff.fn.net.3.bias", (width,)))
    yield from (("norm.weight", (width,)), ("norm.bias", (width,)))


def ecgfounder_keys(in_channels: int = 12) -> KeyTable:
    """ECGFounder net1d.py Net1D(base_filters=64, ratio=1, filter_list=[64,160,160,400,400,1024,1024],
    m_blocks_list=[2,2,2,3,3,4,4], kernel_size=16, stride=2, groups_width=16, n_classes=150). Conv1d has bias;
    BatchNorms are registered whatever use_bn says."""
    yield "first_conv.conv.weight", (64, in_channels, 16)
    yield "first_conv.conv.bias", (64,)
    yield from bn("first_bn", 64)
    cin = 64
    for s, (out, m) in enumerate(zip((64, 160, 160, 400, 400, 1024, 1024), (2, 2, 2, 3, 3, 4, 4), strict=True)):
        groups = out // 16
        for b in range(m):
            block_in = cin if b == 0 else out
            p = f"stage_list.{s}.block_list.{b}"
            yield from bn(f"{p}.bn1", block_in)
            yield from ((f"{p}.conv1.conv.weight", (out, block_in, 1)), (f"{p}.conv1.conv.bias", (out,)))
            yield from bn(f"{p}.bn2", out)
            yield from ((f"{p}.conv2.conv.weight", (out, out // groups, 16)), (f"{p}.conv2.conv.bias", (out,)))
            yield from bn(f"{p}.bn3", out)
            yield from ((f"{p}.conv3.conv.weight", (out, out, 1)), (f"{p}.conv3.conv.bias", (out,)))
            yield from ((f"{p}.se_fc1.weight", (out // 2, out)), (f"{p}.se_fc1.bias", (out // 2,)))
            yield from ((f"{p}.se_fc2.weight", (out, out // 2)), (f"{p}.se_fc2.bias", (out,)))
        cin = out
    yield "dense.weight", (150, 1024)
    yield "dense.bias", (150,)


# Text side and heads of MERL's ECGCLIP (utils_builder.py; projection_size = mlp_hidden_size = 256 in
# pretrain/config.yaml). The BERT (ncbi/MedCPT-Query-Encoder) keys are real names with shrunken shapes:
# they are dropped whatever their size.
def merl_text_side_keys() -> KeyTable:
    yield "lm_model.embeddings.word_embeddings.weight", (8, 768)
    yield "lm_model.embeddings.position_embeddings.weight", (8, 768)
    yield "lm_model.embeddings.LayerNorm.weight", (768,)
    yield "lm_model.encoder.layer.0.attention.self.query.weight", (768, 768)
    yield "lm_model.pooler.dense.weight", (768, 768)
    yield from (("proj_t.0.weight", (256, 768)), ("proj_t.0.bias", (256,)), ("proj_t.2.weight", (256, 256)),
                ("proj_t.2.bias", (256,)))


def merl_resnet_head_keys(channels: int) -> KeyTable:
    yield from (("downconv.weight", (256, channels, 1)), ("downconv.bias", (256,)))
    yield from (("att_pool_head.positional_embedding", (1, 314, 256)), ("att_pool_head.cls_token", (1, 1, 256)))
    yield from (("att_pool_head.mhsa.in_proj_weight", (768, 256)), ("att_pool_head.mhsa.in_proj_bias", (768,)))
    yield from (("att_pool_head.mhsa.out_proj.weight", (256, 256)), ("att_pool_head.mhsa.out_proj.bias", (256,)))
    yield from (("att_pool_head.c_proj.weight", (256, 256)), ("att_pool_head.c_proj.bias", (256,)))
    yield from (("linear1.weight", (256, 256)), ("linear2.weight", (256, 256)))


def merl_vit_head_keys(width: int) -> KeyTable:
    yield from (("proj_e.0.weight", (256, width)), ("proj_e.0.bias", (256,)))
    yield from bn("proj_e.1", 256)
    yield from (("proj_e.3.weight", (256, 256)), ("proj_e.3.bias", (256,)))
    yield from bn("proj_e.4", 256)
    yield from (("linear1.weight", (256, width)), ("linear2.weight", (256, width)))


def fabricate(table: KeyTable, seed: int = 0, bn_ran: bool = True) -> OrderedDict[str, torch.Tensor]:
    """Random tensors in a key table; BatchNorm statistics look used (or at their initial values)."""
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in table:
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(1234 if bn_ran else 0)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5 if bn_ran else torch.ones(shape)
        elif key.endswith("running_mean"):
            out[key] = torch.randn(shape, generator=g) * 0.1 if bn_ran else torch.zeros(shape)
        else:
            out[key] = torch.randn(shape, generator=g) * 0.05
    return out


def strip(table: KeyTable, drop: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    return {k: s for k, s in table if not any(d in k for d in drop)}


def meta_shapes(name: str, contract: EncoderContract) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        enc = build_encoder(name, contract)
    return {k: tuple(v.shape) for k, v in enc.state_dict().items()}


# --------------------------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_merl_resnet_layout_is_upstreams(depth):
    assert meta_shapes(f"merl-resnet1d-{depth}", MERL_CONTRACT) == strip(merl_resnet_keys(depth), ("linear.",))


@pytest.mark.parametrize("size", sorted(MERL_VIT_CONFIGS))
def test_merl_vit_layout_is_upstreams(size):
    assert meta_shapes(f"merl-vit1d-{size}", MERL_CONTRACT) == dict(merl_vit_keys(size))


def test_ecgfounder_layout_is_upstreams():
    expected = strip(ecgfounder_keys(), ("dense.", "first_bn.", ".bn1.", ".bn2.", ".bn3."))
    assert meta_shapes("ecgfounder-net1d", ECGFOUNDER_CONTRACT) == expected


@pytest.mark.parametrize(("name", "tokens", "width"), [
    ("merl-resnet1d-18", 313, 512),  # upstream's attention pool is sized for 313 steps (utils_builder.py)
    ("merl-resnet1d-50", 313, 2048),
    ("merl-vit1d-tiny", 100, 192),  # 5000 / 50
    ("ecgfounder-net1d", 20, 1024),  # 5000 → 2500 by the first conv, then ceil-halved by 7 stages
])
def test_token_counts_at_trained_contract(name, tokens, width):
    with torch.device("meta"):
        enc = build_encoder(name, MERL_CONTRACT if name.startswith("merl") else ECGFOUNDER_CONTRACT)
        x = torch.empty(2, 12, 5000)
        assert tuple(enc(x).shape) == (2, tokens, width)
        assert tuple(enc(x, pooled=True).shape) == (2, 1, width)


# --------------------------------------------------------------------------------------------- fabricated files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Upstream-shaped checkpoint files, in every nesting the upstream code writes."""
    d = tmp_path_factory.mktemp("upstream")
    r18 = fabricate(merl_resnet_keys(18))
    clip = OrderedDict({f"ecg_encoder.{k}": v for k, v in r18.items()})
    clip.update(fabricate(merl_resnet_head_keys(512), seed=1))
    clip.update(fabricate(merl_text_side_keys(), seed=2))
    paths = {
        "r18_encoder": d / "resnet18_bestZeroShotAll_encoder.pth",
        "r18_total": d / "resnet18_final_total.pth",
        "r18_train": d / "resnet18_3_ckpt.pth",
        "r18_st": d / "resnet18_encoder.safetensors",
        "vit_total": d / "vit_tiny_bestZeroShotAll_ckpt.pth",
        "founder": d / "12_lead_ECGFounder.pth",
    }
    torch.save(r18, paths["r18_encoder"])  # trainer: torch.save(model.module.ecg_encoder.state_dict(), …)
    torch.save(clip, paths["r18_total"])  # trainer: torch.save(model.module.state_dict(), …)
    torch.save({"epoch": 3, "model_state_dict": OrderedDict({f"module.{k}": v for k, v in clip.items()}),
                "optimizer_state_dict": {"state": {}, "param_groups": [
                    {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 1e-8, "params": [0, 1, 2]}]}},
               paths["r18_train"])  # save_checkpoints(): the DDP wrapper's state dict
    save_file(dict(r18), str(paths["r18_st"]))
    vit = OrderedDict({f"ecg_encoder.{k}": v for k, v in fabricate(merl_vit_keys("tiny"), seed=3).items()})
    vit.update(fabricate(merl_vit_head_keys(192), seed=4))
    vit.update(fabricate(merl_text_side_keys(), seed=5))
    torch.save(vit, paths["vit_total"])
    founder = fabricate(ecgfounder_keys(), seed=6, bn_ran=False)  # use_bn=False: BatchNorm never ran
    torch.save({"state_dict": founder, "epoch": 7, "step": 123456, "val_auroc": 0.9}, paths["founder"])
    return {"paths": paths, "r18": r18, "founder": founder}


@pytest.fixture(scope="module")
def merl_artifact(files, tmp_path_factory):
    return import_checkpoint("merl-resnet", files["paths"]["r18_total"], tmp_path_factory.mktemp("a") / "merl18")


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("which", ["r18_encoder", "r18_total", "r18_train", "r18_st"])
def test_merl_resnet_every_nesting(files, tmp_path, which):
    src = files["paths"][which]
    out = import_checkpoint("merl-resnet", src, tmp_path / "out")
    meta = read_encoder_metadata(out)
    assert meta is not None and meta.encoder == "merl-resnet1d-18" and meta.contract == MERL_CONTRACT
    assert meta.kwargs == {} and meta.source["sha256"] == _sha(src) and meta.source["kind"] == "merl-resnet"
    saved = load_file(str(out / "encoder.safetensors"))
    expected = {k: v for k, v in files["r18"].items() if not k.startswith("linear.")}
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in expected)
    groups = meta.source["dropped_groups"]
    assert groups["linear.*"] == 2
    if which in ("r18_total", "r18_train"):
        assert {"lm_model.*", "proj_t.*", "downconv.*", "att_pool_head.*", "linear1.*", "linear2.*"} <= set(groups)
        assert "ecg_encoder." in meta.source["nesting"]["prefixes_stripped"]
    if which == "r18_train":
        assert meta.source["nesting"]["containers"] == ["model_state_dict"]
        assert meta.source["nesting"]["prefixes_stripped"][0] == "module."
    enc = build_encoder(meta.encoder, meta.contract)
    assert load_encoder_checkpoint(enc, out) == meta


def test_merl_vit_from_whole_clip_model(files, tmp_path):
    out = import_checkpoint("merl-vit", files["paths"]["vit_total"], tmp_path / "vit")
    meta = read_encoder_metadata(out)
    assert meta.encoder == "merl-vit1d-tiny" and meta.contract == MERL_CONTRACT
    assert {"proj_e.*", "linear1.*", "linear2.*", "lm_model.*", "proj_t.*"} == set(meta.source["dropped_groups"])
    assert len(load_file(str(out / "encoder.safetensors"))) == len(dict(merl_vit_keys("tiny")))


def test_ecgfounder_release(files, tmp_path):
    out = import_checkpoint("ecgfounder", files["paths"]["founder"], tmp_path / "founder")
    meta = read_encoder_metadata(out)
    assert meta.encoder == "ecgfounder-net1d" and meta.contract == ECGFOUNDER_CONTRACT
    assert meta.contract.normalisation == "zscore_record" and meta.contract.samples == 5000
    assert (meta.contract.notch_hz, meta.contract.bandpass, meta.contract.bandpass_order,
            meta.contract.baseline) == (50.0, (0.67, 40.0), 4, "median")
    assert meta.source["nesting"]["containers"] == ["state_dict"]
    assert set(meta.source["nesting"]["other_entries"]) == {"epoch", "step", "val_auroc"}
    assert meta.source["dropped_groups"]["dense.*"] == 2
    assert meta.source["dropped_groups"]["first_bn.*"] == 5
    saved = load_file(str(out / "encoder.safetensors"))
    assert torch.equal(saved["stage_list.6.block_list.3.se_fc2.weight"],
                       files["founder"]["stage_list.6.block_list.3.se_fc2.weight"])


def _first_stages(table: KeyTable) -> KeyTable:
    """The stem and first two stages only: both refusals below happen before the whole-model fit check."""
    return ((k, s) for k, s in table if not k.startswith(("stage_list.2", "stage_list.3", "stage_list.4",
                                                          "stage_list.5", "stage_list.6")))


def test_ecgfounder_with_trained_batchnorm_is_refused(tmp_path):
    path = tmp_path / "bn.pth"
    torch.save({"state_dict": fabricate(_first_stages(ecgfounder_keys()), bn_ran=True)}, path)
    with pytest.raises(ModelError, match="use_bn=True"):
        import_checkpoint("ecgfounder", path, tmp_path / "out")


def test_one_lead_ecgfounder_is_refused(tmp_path):
    path = tmp_path / "1_lead_ECGFounder.pth"
    torch.save({"state_dict": fabricate(_first_stages(ecgfounder_keys(in_channels=1)), bn_ran=False)}, path)
    with pytest.raises(ModelError, match="1 lead"):
        import_checkpoint("ecgfounder", path, tmp_path / "out")


def test_variant_inference_from_shapes():
    from meit.models.encoders.imports import KIND_SPECS

    for depth in (18, 34, 50, 101):
        assert KIND_SPECS["merl-resnet"].infer(dict(merl_resnet_keys(depth))) == f"merl-resnet1d-{depth}"
    for size in MERL_VIT_CONFIGS:
        assert KIND_SPECS["merl-vit"].infer(dict(merl_vit_keys(size))) == f"merl-vit1d-{size}"
    with pytest.raises(ModelError, match="not a MERL ResNet"):
        KIND_SPECS["merl-resnet"].infer(dict(ecgfounder_keys()))


def test_wrong_variant_missing_and_misshaped_keys_are_named(files, tmp_path):
    with pytest.raises(ModelError, match=r"missing: .*layer1\.2\.conv1\.weight"):
        import_checkpoint("merl-resnet", files["paths"]["r18_encoder"], tmp_path / "a", variant="resnet34")
    with pytest.raises(ModelError, match="not a merl-resnet variant"):
        import_checkpoint("merl-resnet", files["paths"]["r18_encoder"], tmp_path / "a", variant="resnet152")
    broken = OrderedDict(files["r18"])
    del broken["layer4.1.bn2.running_var"]
    broken["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5)
    broken["layer9.extra"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(ModelError) as err:
        import_checkpoint("merl-resnet", path, tmp_path / "b")
    text = str(err.value)
    assert "missing: layer4.1.bn2.running_var" in text and "unexpected: layer9.extra" in text
    assert "layer2.0.conv1.weight (file [128, 64, 5], encoder [128, 64, 3])" in text
    assert not (tmp_path / "b").exists()


def test_file_needing_full_unpickling_is_refused(files, tmp_path):
    path = tmp_path / "with_args.pth"
    torch.save({"state_dict": files["r18"], "args": argparse.Namespace(lr=1e-3)}, path)
    with pytest.raises(ModelError, match=r"weights_only=True.*never unpickles.*re-save"):
        import_checkpoint("merl-resnet", path, tmp_path / "out")


def test_torch_load_is_always_weights_only(files, tmp_path, monkeypatch):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    out = import_checkpoint("merl-resnet", files["paths"]["r18_train"], tmp_path / "out")
    bare = tmp_path / "bare.pt"
    torch.save({"state_dict": load_file(str(out / "encoder.safetensors"))}, bare)
    load_encoder_checkpoint(build_encoder("merl-resnet1d-18", MERL_CONTRACT), bare)
    assert calls == [True, True]


# --------------------------------------------------------------------------------------------- artifact format


def test_artifact_round_trip_and_validation(tmp_path):
    contract = EncoderContract(fs=100, seconds=2.0, normalisation="none")
    enc = build_encoder("resnet1d-tiny", contract, base_width=8)
    out = write_encoder_artifact(tmp_path / "art", "resnet1d-tiny", enc, contract, kwargs={"base_width": 8},
                                 source={"note": "test"})
    meta = read_encoder_metadata(out)
    assert (meta.encoder, meta.contract, meta.kwargs, meta.source) == ("resnet1d-tiny", contract,
                                                                      {"base_width": 8}, {"note": "test"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no temp folders left behind
    assert read_encoder_metadata(tmp_path) is None and read_encoder_metadata(tmp_path / "nope") is None
    write_encoder_artifact(out, "resnet1d-tiny", enc.state_dict(), contract)  # replaces a previous artifact
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(OutputError, match="not written by meit"):
        write_encoder_artifact(other, "resnet1d-tiny", enc, contract)
    with pytest.raises(ModelError, match="unknown encoder"):
        write_encoder_artifact(tmp_path / "x", "resnet-9", enc, contract)

    good = json.loads((out / "encoder.json").read_text())
    for patch, field in [({"format": "other"}, "'format'"), ({"version": 99}, "newer meit"),
                         ({"encoder": ""}, "'encoder'"), ({"contract": {**good["contract"], "fs": -1}}, "contract.fs"),
                         ({"contract": {**good["contract"], "normalisation": "robust"}}, "contract.normalisation"),
                         ({"kwargs": []}, "'kwargs'")]:
        (out / "encoder.json").write_text(json.dumps({**good, **patch}))
        with pytest.raises(ModelError, match=field) as err:
            read_encoder_metadata(out)
        assert "encoder.json" in str(err.value)


def test_loading_checks_name_and_contract(merl_artifact):
    other_rate = build_encoder("merl-resnet1d-18", EncoderContract(fs=100, seconds=10.0, normalisation="minmax"))
    with pytest.raises(ModelError, match=r"holds 'merl-resnet1d-18' trained for 12 leads × 5000.*model.encoder_fs=500"):
        load_encoder_checkpoint(other_rate, merl_artifact)
    other_name = build_encoder("resnet1d-18", MERL_CONTRACT)
    with pytest.raises(ModelError, match=r"'resnet1d-18' is being loaded.*model.encoder=merl-resnet1d-18"):
        load_encoder_checkpoint(other_name, merl_artifact)
    # the escape hatch: the bare weights file carries no contract
    load_encoder_checkpoint(other_rate, merl_artifact / "encoder.safetensors")


# --------------------------------------------------------------------------------------------- MeitModel + CLI


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(llm="tiny-llama", projector="mlp", fusion="kv", lora={"r": 4, "alpha": 8, "dropout": 0.0},
                       **kw)


def test_model_build_takes_contract_from_artifact(merl_artifact, tmp_path):
    torch.manual_seed(0)
    model = MeitModel.build(_cfg(encoder_checkpoint=str(merl_artifact)), data_fs=100, data_seconds=10.0).eval()
    assert model.contract == MERL_CONTRACT and model.cfg.encoder == "merl-resnet1d-18"
    assert model.encoder.registry_name == "merl-resnet1d-18"
    saved = load_file(str(merl_artifact / "encoder.safetensors"))
    assert torch.equal(model.encoder.state_dict()["layer3.1.conv2.weight"], saved["layer3.1.conv2.weight"])
    _, ids, am, em, labels = make_batch(model, [7])
    ecg = torch.rand(1, 12, MERL_CONTRACT.samples)  # min-max scaled, like MERL's preprocessing
    with torch.no_grad():
        out = model(ecg, ids, am, em, labels=labels)
    assert torch.isfinite(out.loss)
    # the resolved name is saved, so the model reloads without the artifact
    again = MeitModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert again.cfg.encoder == "merl-resnet1d-18" and again.contract == MERL_CONTRACT
    # model.encoder=auto and an explicit, agreeing encoder name work too
    assert _adopt(encoder="auto", encoder_checkpoint=str(merl_artifact)).encoder == "merl-resnet1d-18"
    assert _adopt(encoder="merl-resnet1d-18", normalisation="minmax_record", encoder_fs=500,
                  encoder_checkpoint=str(merl_artifact)).encoder_seconds == 10.0


def _adopt(**kw) -> ModelConfig:
    from meit.models.encoder_choice import adopt_encoder_artifact

    cfg = _cfg(**kw)
    return adopt_encoder_artifact(cfg, read_encoder_metadata(cfg.encoder_checkpoint))


@pytest.mark.parametrize(("kw", "named"), [
    ({"encoder": "resnet1d-18"}, "model.encoder=resnet1d-18 (checkpoint: merl-resnet1d-18)"),
    ({"normalisation": "zscore"}, "model.normalisation=zscore (checkpoint: minmax_record)"),
    ({"normalisation": "minmax"}, "model.normalisation=minmax (checkpoint: minmax_record)"),
    ({"notch_hz": 50}, "model.notch_hz=50 (checkpoint: null)"),
    ({"encoder_fs": 100}, "model.encoder_fs=100 (checkpoint: 500)"),
])
def test_model_build_refuses_explicit_conflicts(merl_artifact, kw, named):
    with pytest.raises(ModelError) as err:
        MeitModel.build(_cfg(encoder_checkpoint=str(merl_artifact), **kw), data_fs=500, data_seconds=10.0)
    assert named in str(err.value) and "model.encoder=merl-resnet1d-18" in str(err.value)


def test_auto_encoder_needs_an_artifact():
    with pytest.raises(ConfigError, match=r"encoder\.json"):
        MeitModel.build(_cfg(encoder="auto"), data_fs=100, data_seconds=10.0)


def test_cli_import_encoder(files, tmp_path, capsys):
    from meit.cli import import_encoder_cmd

    assert import_encoder_cmd.KIND_CHOICES == KINDS
    parser = argparse.ArgumentParser(prog="meit")
    import_encoder_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["import-encoder", "merl-resnet", str(files["paths"]["r18_total"]),
                              "--out", str(tmp_path / "cli"), "--variant", "18"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "merl-resnet1d-18" in text and "lm_model.*" in text and "500 Hz" in text
    assert f"model.encoder_checkpoint={tmp_path / 'cli'}" in text
    bad = parser.parse_args(["import-encoder", "merl-vit", str(files["paths"]["r18_total"]), "--out",
                             str(tmp_path / "bad")])
    with pytest.raises(ModelError, match="to_patch_embedding"):
        bad.func(bad)
    with pytest.raises(SystemExit):
        parser.parse_args(["import-encoder", "hubert", "x", "--out", "y"])


# --------------------------------------------------------------------------------------------- declared preprocessing


def _upstream_ecgfounder(signal, fs=500):
    """ECGFounder's util.filter_bandpass + dataset.py z_score_normalization, written from upstream source."""
    import numpy as np
    from scipy.signal import butter, filtfilt, iirnotch, medfilt

    b, a = iirnotch(50, 30, fs)
    filtered = np.zeros_like(signal)
    for c in range(signal.shape[0]):
        filtered[c] = filtfilt(b, a, signal[c])
    b, a = butter(N=4, Wn=[0.67, 40], btype="bandpass", fs=fs)
    for c in range(signal.shape[0]):
        filtered[c] = filtfilt(b, a, filtered[c])
    baseline = np.zeros_like(filtered)
    for c in range(filtered.shape[0]):
        kernel_size = int(0.4 * fs) + 1
        if kernel_size % 2 == 0:
            kernel_size += 1
        baseline[c] = medfilt(filtered[c], kernel_size=kernel_size)
    x = filtered - baseline
    return (x - np.mean(x)) / (np.std(x) + 1e-8)


def _ecg_like(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(5000) / 500
    leads = [(1 + 0.3 * i) * np.sin(2 * np.pi * 1.2 * t + i) + 0.3 * np.sin(2 * np.pi * 50 * t)
             + 0.5 * np.sin(2 * np.pi * 0.15 * t) + 0.2 * i + 0.05 * rng.normal(size=t.size) for i in range(12)]
    x = np.stack(leads)
    x[:, 1000] += 3.0  # a spike
    return x


def test_declared_contracts_are_upstreams_preprocessing():
    import numpy as np

    merl = EncoderContract(12, 500, 10.0, "minmax_record")
    founder = EncoderContract(12, 500, 10.0, "zscore_record", bandpass=(0.67, 40.0), bandpass_order=4,
                              notch_hz=50.0, baseline="median")
    assert (merl, founder) == (MERL_CONTRACT, ECGFOUNDER_CONTRACT)
    assert not MERL_CONTRACT.filtered and ECGFOUNDER_CONTRACT.filtered
    x = _ecg_like()
    # MERL pretrain/preprocess.ipynb: (record - record.min()) / (record.max() - record.min()) over all leads
    merl = MERL_CONTRACT.load_transform(500)(x)
    np.testing.assert_allclose(merl, (x - x.min()) / (x.max() - x.min()), atol=1e-6)
    # ECGFounder: scipy filtfilt conventions included, so the edges match too
    founder = ECGFOUNDER_CONTRACT.load_transform(500)(x)
    np.testing.assert_allclose(founder, _upstream_ecgfounder(x), atol=1e-4)
    assert "50 Hz notch, 0.67–40 Hz band-pass (order 4), median baseline removal" in ECGFOUNDER_CONTRACT.describe()


def test_contract_round_trips_through_encoder_json(tmp_path):
    contract = EncoderContract(fs=100, seconds=2.0, normalisation="zscore_record", bandpass=[0.5, None],
                               bandpass_order=3, notch_hz=60, baseline="highpass")
    assert contract.bandpass == (0.5, None) and contract.notch_hz == 60.0 and hash(contract)
    enc = build_encoder("resnet1d-tiny", contract, base_width=8)
    out = write_encoder_artifact(tmp_path / "art", "resnet1d-tiny", enc, contract, kwargs={"base_width": 8})
    data = json.loads((out / "encoder.json").read_text())
    assert data["version"] == 2  # a version-1 reader would drop the filters: it must refuse instead
    assert data["contract"] == {"leads": 12, "fs": 100, "seconds": 2.0, "normalisation": "zscore_record",
                                "bandpass": [0.5, None], "bandpass_order": 3, "notch_hz": 60.0,
                                "baseline": "highpass"}
    meta = read_encoder_metadata(out)
    assert meta.contract == contract and EncoderContract.from_dict(contract.to_dict()) == contract
    assert load_encoder_checkpoint(build_encoder("resnet1d-tiny", contract, base_width=8), out) == meta
    # a different filter is a different contract: refused like another rate
    with pytest.raises(ModelError, match=r"model.notch_hz=60 'model.bandpass=\[0.5,null\]' model.bandpass_order=3"):
        load_encoder_checkpoint(build_encoder("resnet1d-tiny", EncoderContract(fs=100, seconds=2.0,
                                normalisation="zscore_record"), base_width=8), out)
    # the load-time transform is the declared one
    tf = meta.contract.load_transform(500)
    assert (tf.fs_out, tf.length, tf.normalisation, tf.bandpass, tf.bandpass_order, tf.notch_hz, tf.baseline) == (
        100, 200, "zscore_record", (0.5, None), 3, 60.0, "highpass")
    # a contract without filtering and with a version-1 normalisation is still written as version 1
    plain = EncoderContract(fs=100, seconds=2.0, normalisation="minmax")
    again = write_encoder_artifact(tmp_path / "plain", "resnet1d-tiny", enc.state_dict(), plain)
    assert json.loads((again / "encoder.json").read_text())["version"] == 1


def test_old_encoder_json_without_filter_fields_loads(tmp_path):
    contract = EncoderContract(fs=100, seconds=2.0, normalisation="minmax")
    enc = build_encoder("resnet1d-tiny", contract, base_width=8)
    out = write_encoder_artifact(tmp_path / "old", "resnet1d-tiny", enc, contract, kwargs={"base_width": 8})
    # exactly what meit wrote before the filtering fields existed
    old = {"format": "meit-encoder", "version": 1, "encoder": "resnet1d-tiny",
           "contract": {"leads": 12, "fs": 100, "seconds": 2.0, "normalisation": "minmax"},
           "kwargs": {"base_width": 8}, "source": {}}
    (out / "encoder.json").write_text(json.dumps(old))
    meta = read_encoder_metadata(out)
    assert meta.contract == contract and meta.version == 1
    assert (meta.contract.bandpass, meta.contract.bandpass_order, meta.contract.notch_hz,
            meta.contract.baseline) == (None, 2, None, "none")
    assert not meta.contract.filtered and "filters" not in meta.contract.describe()
    assert EncoderContract.from_dict(old["contract"]) == contract


@pytest.mark.parametrize(("patch", "field"), [
    ({"normalisation": "zscore-record"}, "contract.normalisation"),
    ({"bandpass": [40.0, 0.5]}, "contract.bandpass"),
    ({"bandpass": [0.5]}, "contract.bandpass"),
    ({"bandpass": [60.0, None]}, "contract.bandpass"),  # low edge above Nyquist at 100 Hz
    ({"bandpass": "0.5-40"}, "contract.bandpass"),
    ({"bandpass_order": 0}, "contract.bandpass_order"),
    ({"bandpass_order": 2.5}, "contract.bandpass_order"),
    ({"notch_hz": -50}, "contract.notch_hz"),
    ({"notch_hz": True}, "contract.notch_hz"),
    ({"baseline": "wavelet"}, "contract.baseline"),
])
def test_bad_filter_fields_in_encoder_json_are_named(tmp_path, patch, field):
    contract = EncoderContract(fs=100, seconds=2.0, normalisation="none")
    out = write_encoder_artifact(tmp_path / "a", "resnet1d-tiny", build_encoder("resnet1d-tiny", contract), contract)
    good = json.loads((out / "encoder.json").read_text())
    (out / "encoder.json").write_text(json.dumps({**good, "contract": {**good["contract"], **patch}}))
    with pytest.raises(ModelError, match=field) as err:
        read_encoder_metadata(out)
    assert "encoder.json" in str(err.value)


def test_contract_vocabulary_matches_the_transforms_and_the_recipe():
    from meit import ecg_signal
    from meit.data import contract, transforms
    from meit.pretrain.config import EcgSideConfig

    # declared once, in the signal module; the contract and the transforms use those very tuples
    assert contract.NORMALISATIONS is ecg_signal.NORMALISATIONS and contract.BASELINES is ecg_signal.BASELINES
    assert transforms.BASELINES is ecg_signal.BASELINES
    # every processing field of the contract is a recipe key of the same name, in training and pretraining
    for schema in (ModelConfig, EcgSideConfig):
        assert set(contract.PROCESSING_FIELDS) <= set(schema.model_fields), schema
    assert set(ModelConfig.model_fields["normalisation"].annotation.__args__) == set(ecg_signal.NORMALISATIONS)
    assert set(ModelConfig.model_fields["baseline"].annotation.__args__) == set(ecg_signal.BASELINES)


def test_imported_merl_trains_on_record_wide_minmax(merl_artifact):
    """The whole path: import → MeitModel.build adopts the contract → its load transform."""
    import numpy as np

    from meit.ecg_signal import minmax_record, resample

    model = MeitModel.build(_cfg(encoder_checkpoint=str(merl_artifact)), data_fs=100, data_seconds=10.0)
    assert model.cfg.normalisation == "minmax_record" and model.contract == MERL_CONTRACT
    tf = model.encoder.contract.load_transform(100)  # PTB-XL's 100 Hz records
    assert (tf.fs_in, tf.fs_out, tf.length, tf.normalisation) == (100, 500, 5000, "minmax_record")
    assert tf.notch_hz is None and tf.bandpass is None and tf.baseline == "none"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 1000)) * np.linspace(0.1, 3.0, 12)[:, None]  # leads of very different ranges
    y = model.encoder.contract.load_transform(100)(x)
    assert y.shape == (12, 5000) and y.dtype == np.float32
    assert y.min() == 0.0 and y.max() == 1.0  # over the whole record ...
    assert np.ptp(y[0]) < 0.2  # ... so the smallest lead does not span [0, 1], as it would per lead
    np.testing.assert_allclose(y, minmax_record(resample(x, 100, 500)), atol=1e-6)
    # single-record generation and retrieval build theirs from the same contract
    np.testing.assert_array_equal(model.contract.load_transform(100)(x), y)


def test_ecgfounder_contract_is_adopted_with_its_filters(files, tmp_path):
    from meit.models.encoder_choice import contract_from_config

    out = import_checkpoint("ecgfounder", files["paths"]["founder"], tmp_path / "founder")
    cfg = _adopt(encoder_checkpoint=str(out))
    assert (cfg.encoder, cfg.normalisation, cfg.notch_hz, cfg.bandpass, cfg.bandpass_order, cfg.baseline) == (
        "ecgfounder-net1d", "zscore_record", 50.0, (0.67, 40.0), 4, "median")
    assert contract_from_config(cfg, data_fs=100, data_seconds=10.0) == ECGFOUNDER_CONTRACT
    # explicit, agreeing filter keys are fine; a different one is a conflict naming the fix
    _adopt(encoder_checkpoint=str(out), bandpass=[0.67, 40], bandpass_order=4, baseline="median")
    with pytest.raises(ModelError) as err:
        _adopt(encoder_checkpoint=str(out), baseline="highpass")
    text = str(err.value)
    assert "model.baseline=highpass (checkpoint: median)" in text
    assert "model.notch_hz=50 'model.bandpass=[0.67,40]' model.bandpass_order=4 model.baseline=median" in text
