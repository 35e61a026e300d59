"""Every tiny family × fusion mode: forward/backward, gradient routing, loss masking, generation with
KV cache vs step-by-step recompute, left padding vs single rows, save → load."""

from __future__ import annotations

import pytest
import torch

from meit.config import ModelConfig
from meit.models import MeitModel
from meit.models.backbones import TINY

FAMILIES = sorted(TINY)
FUSIONS = ["prefix", "kv"]
FS, SECONDS = 50, 2.0  # 12 × 100 samples keeps the encoder negligible
N_PREFIX = 2
_CACHE: dict[tuple[str, str], MeitModel] = {}


def make_model(llm: str, fusion: str, **extra) -> MeitModel:
    cfg = ModelConfig(
        llm=llm, encoder="resnet1d-tiny", projector="mlp", fusion=fusion,
        num_ecg_tokens=N_PREFIX if fusion == "prefix" else 1,
        lora={"r": 4, "alpha": 8, "dropout": 0.0}, **extra,
    )
    torch.manual_seed(0)
    model = MeitModel.build(cfg, data_fs=FS, data_seconds=SECONDS)
    perturb(model)
    return model.eval()


def perturb(model: MeitModel, seed: int = 1) -> None:
    """LoRA B starts at zero (no effect): give the adapter a visible effect so tests can see it."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def cached_model(llm: str, fusion: str) -> MeitModel:
    key = (llm, fusion)
    if key not in _CACHE:
        _CACHE[key] = make_model(llm, fusion)
    model = _CACHE[key]
    model.trainable_parameter_groups("finetune", train_encoder=True)
    model.zero_grad(set_to_none=True)
    return model.eval()


def make_batch(model: MeitModel, lengths: list[int], seed: int = 0, prompt: int = 3):
    """Left-padded rows; ECG positions as the model wants them; labels on the last tokens only."""
    g = torch.Generator().manual_seed(seed)
    n = model.num_ecg_tokens
    B, L = len(lengths), max(lengths)
    vocab = min(len(model.tokenizer), 1000)
    ids = torch.randint(10, vocab, (B, L), generator=g)
    am = torch.zeros(B, L, dtype=torch.long)
    em = torch.zeros(B, L, dtype=torch.bool)
    labels = torch.full((B, L), -100)
    for b, length in enumerate(lengths):
        start = L - length
        am[b, start:] = 1
        ids[b, :start] = model.tokenizer.pad_token_id
        ecg_at = start if model.ecg_placement == "start" else start + 1
        em[b, ecg_at : ecg_at + n] = True
        first_label = ecg_at + n + prompt
        labels[b, first_label:] = ids[b, first_label:]
    ids[em] = model.ecg_placeholder_id
    ecg = torch.randn(B, 12, int(FS * SECONDS), generator=g)
    return ecg, ids, am, em, labels


def row(batch, b: int):
    """Row b of a left-padded batch with its padding removed."""
    ecg, ids, am, em, labels = batch
    keep = am[b].bool()
    return ecg[b : b + 1], ids[b : b + 1, keep], am[b : b + 1, keep], em[b : b + 1, keep], labels[b : b + 1, keep]


def until_eos(tokens: list[int], eos: int | list[int] | None) -> list[int]:
    stops = set(eos if isinstance(eos, list) else [eos])
    out = []
    for t in tokens:
        out.append(t)
        if t in stops:
            break
    return out


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_forward_backward_and_gradient_routing(family, fusion):
    model = cached_model(family, fusion)
    batch = make_batch(model, [9, 7])
    named = {
        "encoder": dict(model.encoder.named_parameters()),
        "projector": dict(model.projector.named_parameters()),
        "lora": {n: p for n, p in model.llm.named_parameters() if "lora_" in n},
        "base": {n: p for n, p in model.llm.named_parameters() if "lora_" not in n},
    }
    for stage, train_encoder, expected in [
        ("align", True, {"projector"}),
        ("finetune", False, {"projector", "lora"}),
        ("finetune", True, {"projector", "lora", "encoder"}),
    ]:
        groups = model.trainable_parameter_groups(stage, train_encoder=train_encoder)
        assert set(groups) == {"encoder", "projector", "lora"}
        assert {k for k, v in groups.items() if v} == expected
        model.zero_grad(set_to_none=True)
        model.train()
        out = model(*batch[:4], labels=batch[4])
        assert out.logits.shape[:2] == batch[1].shape
        assert torch.isfinite(out.loss)
        out.loss.backward()
        for part, params in named.items():
            for name, p in params.items():
                if part in expected:
                    assert p.grad is not None, f"{stage}: {part} {name} got no gradient"
                else:
                    assert p.grad is None, f"{stage}: frozen {part} {name} got a gradient"
            if part in expected:
                total = sum(float(p.grad.abs().sum()) for p in params.values())
                assert total > 0, f"{stage}: all gradients of {part} are zero"
    model.eval()


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_loss_ignores_prompt_padding_and_ecg_positions(family, fusion):
    model = cached_model(family, fusion)
    ecg, ids, am, em, labels = make_batch(model, [10, 6], seed=3)
    with torch.no_grad():
        out = model(ecg, ids, am, em, labels=labels)
        # reference: mean CE over labelled (shifted) positions only
        logp = torch.log_softmax(out.logits[:, :-1].float(), -1)
        tgt = labels[:, 1:]
        keep = tgt != -100
        ref = -logp[keep].gather(-1, tgt[keep].unsqueeze(-1)).mean()
        torch.testing.assert_close(out.loss, ref, rtol=1e-5, atol=1e-6)
        # other ids at padding positions, and stray labels on padding / ECG positions: same loss
        ids2, labels2 = ids.clone(), labels.clone()
        ids2[am == 0] = 7
        labels2[am == 0] = 5
        labels2[em] = 6
        out2 = model(ecg, ids2, am, em, labels=labels2)
        torch.testing.assert_close(out2.loss, out.loss, rtol=1e-5, atol=1e-6)
        # the prompt's labels (-100) can be anything ignored: equal to the per-row token-weighted mean
        per_row = []
        for b in range(2):
            r = row((ecg, ids, am, em, labels), b)
            n_tok = int((r[4][:, 1:] != -100).sum())
            per_row.append((model(*r[:4], labels=r[4]).loss, n_tok))
        weighted = sum(loss * n for loss, n in per_row) / sum(n for _, n in per_row)
        torch.testing.assert_close(out.loss, weighted, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_labelled_logits_only_gives_the_same_loss_and_gradients(family, fusion):
    """Training computes logits only where a label is predicted: same loss and gradients, fewer positions."""
    model = cached_model(family, fusion)
    ecg, ids, am, em, labels = make_batch(model, [10, 6], seed=5)
    full = model(ecg, ids, am, em, labels=labels)
    full.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    part = model(ecg, ids, am, em, labels=labels, labelled_logits_only=True)
    part.loss.backward()
    torch.testing.assert_close(part.loss, full.loss, rtol=1e-5, atol=1e-6)
    assert grads and all(
        torch.allclose(p.grad, grads[n], rtol=1e-4, atol=1e-6) for n, p in model.named_parameters() if n in grads)
    if model._accepts_logits_to_keep:
        predicted = (labels[:, 1:] != -100).any(dim=0).nonzero().flatten()
        assert part.logit_positions.tolist() == predicted.tolist()
        assert part.logits.shape[1] == len(predicted) < ids.shape[1]


def _stepwise(model: MeitModel, r, steps: int) -> list[int]:
    ecg, ids, am, em, _ = r
    out = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(ecg, ids, am, em).logits
            nxt = int(logits[0, -1].argmax())
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
            am = torch.cat([am, torch.ones(1, 1, dtype=am.dtype)], 1)
            em = torch.cat([em, torch.zeros(1, 1, dtype=em.dtype)], 1)
    return out


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_generate_cache_equals_stepwise_and_left_padding(family, fusion):
    model = cached_model(family, fusion)
    batch = make_batch(model, [8, 5, 7], seed=5)
    steps = 6
    eos = model.hf_model.generation_config.eos_token_id
    batched = model.generate(*batch[:4], max_new_tokens=steps)
    assert batched.shape[0] == 3 and batched.shape[1] <= steps
    for b in range(3):
        r = row(batch, b)
        single = model.generate(*r[:4], max_new_tokens=steps)[0].tolist()
        reference = until_eos(_stepwise(model, r, steps), eos)
        assert until_eos(single, eos) == reference, f"row {b}: KV-cache generate differs from recompute"
        assert until_eos(batched[b].tolist(), eos) == reference, f"row {b}: left-padded batch differs"


@pytest.mark.parametrize("family", ["tiny-llama", "tiny-gpt2", "tiny-bloom"])
def test_kv_generation_without_a_cache_keeps_the_ecg(family):
    """Without a KV cache every step recomputes the sequence; the slot must be re-armed each time (it was
    read on the first call only, so from the second token on the report no longer saw the ECG)."""
    model = cached_model(family, "kv")
    eos = model.hf_model.generation_config.eos_token_id
    for b in range(2):
        r = row(make_batch(model, [8, 6], seed=7), b)
        reference = until_eos(_stepwise(model, r, 6), eos)
        assert until_eos(model.generate(*r[:4], max_new_tokens=6, use_cache=False)[0].tolist(), eos) == reference


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_identical_logits(family, fusion, tmp_path):
    model = cached_model(family, fusion)
    batch = make_batch(model, [7, 9], seed=11)
    with torch.no_grad():
        before = model(*batch[:4]).logits
    model.save_pretrained(tmp_path / "artifact")
    files = {p.name for p in (tmp_path / "artifact").iterdir()}
    assert {"meit_model.json", "encoder.safetensors", "projector.safetensors", "adapter", "llm"} <= files
    assert not list((tmp_path / "artifact").rglob("*.bin")) and not list((tmp_path / "artifact").rglob("*.pt"))
    loaded = MeitModel.from_pretrained(tmp_path / "artifact")
    assert loaded.backbone == model.backbone
    assert loaded.num_ecg_tokens == model.num_ecg_tokens
    assert loaded.ecg_placeholder_id == model.ecg_placeholder_id
    with torch.no_grad():
        after = loaded(*batch[:4]).logits
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
