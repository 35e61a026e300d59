"""The non-LLM baseline (meit/models/encdec): vocabulary, decoders, decoding, artifact, training and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from meit.cli import main
from meit.config import ModelConfig, load_recipe
from meit.data.collator import EcgCollator
from meit.data.prompts import PromptFormat, encode_example
from meit.errors import ConfigError
from meit.models import MeitModel
from meit.models.encdec import EncDecModel, build_word_tokenizer
from meit.models.encdec.vocab import SPECIAL_TOKENS

DECODERS = ["encdec-transformer", "encdec-lstm"]
SMALL = {"d_model": 32, "layers": 2, "heads": 4, "ff_dim": 64, "dropout": 0.0, "vocab_min_count": 1}
REPORTS = {0: "Sinus rhythm, rate 72 bpm. Normal ECG.", 1: "Atrial fibrillation (rapid); abnormal ECG."}


def _model(llm: str, reports: tuple[str, ...] | None = None, seconds: float = 2.5, **encdec) -> EncDecModel:
    cfg = ModelConfig(llm=llm, encoder="resnet1d-tiny", encdec={**SMALL, **encdec})
    return MeitModel.build(cfg, data_fs=100, data_seconds=seconds,
                           train_reports=list(reports or REPORTS.values()))


def _batch(model, ecg: torch.Tensor, reports: list[str], padding_side: str = "right") -> dict:
    fmt = PromptFormat.from_model(model, 64)
    rows = []
    for i, (signal, report) in enumerate(zip(ecg, reports, strict=True)):
        encoded = encode_example(model.tokenizer, fmt, "Describe this ECG.", report)
        rows.append({"id": str(i), "report": report, "ecg": signal, "input_ids": encoded.input_ids,
                     "labels": encoded.labels, "ecg_mask": encoded.ecg_mask})
    return EcgCollator(model.tokenizer.pad_token_id, padding_side)(rows)


def _inputs(batch: dict) -> dict:
    return {k: batch[k] for k in ("ecg", "input_ids", "attention_mask", "ecg_mask", "labels")}


def _two_class_ecg(labels: torch.Tensor, seed: int, samples: int = 250) -> torch.Tensor:
    """Class 0: a slow sine on every lead; class 1: a fast one with the opposite sign; plus noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 2.5, samples)
    slow, fast = torch.sin(2 * torch.pi * 1.0 * t), -torch.sin(2 * torch.pi * 4.0 * t)
    pattern = torch.where(labels[:, None] == 0, slow, fast)[:, None, :].expand(-1, 12, -1)
    return pattern + 0.3 * torch.randn(len(labels), 12, samples, generator=g)


# ----------------------------------------------------------------------------------------------
# vocabulary


def test_vocabulary_is_deterministic_ordered_by_count_and_bounded():
    reports = ["b a a.", "c a b,", "a d"]
    first = build_word_tokenizer(reports, min_count=1)
    again = build_word_tokenizer(list(reversed(reports)), min_count=1)
    assert first.get_vocab() == again.get_vocab()
    vocab = first.get_vocab()
    assert [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])][:5] == list(SPECIAL_TOKENS)
    # ▁a (3) first, then ▁b (2); ties by text
    assert vocab["\u2581a"] < vocab["\u2581b"] < vocab["\u2581d"]
    assert "\u2581d" not in build_word_tokenizer(reports, min_count=2).get_vocab()
    assert len(build_word_tokenizer(reports, min_count=1, max_size=2)) == len(SPECIAL_TOKENS) + 2


def test_vocabulary_round_trips_spacing_and_maps_unseen_words_to_unk():
    text = "Sinus rhythm, rate 72 bpm. QRS (0.08 s)."
    tok = build_word_tokenizer([text], min_count=1)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == text
    unseen = tok("Sinus tachycardia, rate 72.", add_special_tokens=False)["input_ids"]
    assert unseen.count(tok.unk_token_id) == 1
    assert tok.decode(unseen, skip_special_tokens=True) == "Sinus, rate 72."
    lower = build_word_tokenizer([text], min_count=1, lowercase=True)
    assert lower.decode(lower("SINUS Rhythm", add_special_tokens=False)["input_ids"]) == "sinus rhythm"


def test_prompt_is_ecg_then_bos_whatever_the_instruction():
    model = _model("encdec-transformer")
    fmt = PromptFormat.from_model(model, 64)
    for instruction in ("Describe this ECG.", "Write the clinical report for this twelve-lead signal, please."):
        encoded = encode_example(model.tokenizer, fmt, instruction, REPORTS[0])
        assert encoded.input_ids[:2] == [model.ecg_placeholder_id, model.tokenizer.bos_token_id]
        assert encoded.ecg_mask[:2] == [True, False] and encoded.labels[:2] == [-100, -100]
        assert encoded.input_ids[-1] == model.tokenizer.eos_token_id


def test_vocabulary_comes_from_the_training_rows_only(tmp_path, prepared_100hz):
    from meit.data.dataset import load_split
    from meit.training.setup import build_model, train_reports

    recipe = load_recipe(None, [f"data.path={prepared_100hz}", f"output_dir={tmp_path}", "model.llm=encdec-lstm",
                                "model.encoder=resnet1d-tiny", "data.fs=100", "data.max_train_samples=5",
                                "model.encdec.vocab_min_count=1"])
    used = train_reports(recipe)
    assert used == [str(r) for r in load_split(prepared_100hz, "train")["report"][:5]]
    model = build_model(recipe)
    assert model.tokenizer.get_vocab() == build_word_tokenizer(used, min_count=1).get_vocab()
    known = set(model.tokenizer.get_vocab())
    test_words = {w for r in load_split(prepared_100hz, "test")["report"] for w in build_word_tokenizer(
        [r], min_count=1).get_vocab() if w not in SPECIAL_TOKENS}
    assert test_words - known, "the test split should hold words the 5 training reports lack"


# ----------------------------------------------------------------------------------------------
# forward, backward, decoding


@pytest.mark.parametrize("llm", DECODERS)
def test_forward_backward_loss_and_padding(llm):
    torch.manual_seed(0)
    model = _model(llm)
    reports = [REPORTS[0], REPORTS[1], REPORTS[0]]
    batch = _batch(model, torch.randn(3, 12, 250), reports)
    out = model(**_inputs(batch))
    out.loss.backward()
    assert all(p.grad is not None for p in model.decoder.parameters() if p.requires_grad)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    # the loss is the mean cross-entropy over report tokens + EOS (prompt and padding excluded)
    tokens, targets, _ = model.decoder_sequence(batch["input_ids"], batch["attention_mask"], batch["ecg_mask"],
                                                batch["labels"])
    assert tokens[0, 0] == model.tokenizer.bos_token_id
    shifted, logits = targets[:, 1:], out.logits[:, :-1]
    keep = shifted != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], shifted[keep])
    assert torch.allclose(out.loss, expected, atol=1e-6)
    model.eval()
    left = model(**_inputs(_batch(model, batch["ecg"], reports, padding_side="left")))
    right = model(**_inputs(batch))
    assert torch.allclose(left.loss, right.loss, atol=1e-6)


@pytest.mark.parametrize("llm", DECODERS)
def test_beam_search_scores_at_least_greedy_and_one_beam_is_greedy(llm):
    torch.manual_seed(1)
    model = _model(llm, reports=("a b c d e f g h", "b c a d. e, f")).eval()
    ecg = torch.randn(3, 12, 250)
    greedy = model.generate(ecg, max_new_tokens=10)
    assert torch.equal(model.generate(ecg, max_new_tokens=10, num_beams=1), greedy)
    beams = model.generate(ecg, max_new_tokens=10, num_beams=4)

    def mean_logprob(seq: torch.Tensor) -> torch.Tensor:  # per row, over the generated tokens up to EOS
        eos, pad = model.tokenizer.eos_token_id, model.tokenizer.pad_token_id
        scores = []
        for row, signal in zip(seq, ecg, strict=True):
            ids = row[row != pad].tolist()
            tokens = torch.tensor([[model.tokenizer.bos_token_id, *ids]])
            logits = model.decoder(tokens, model.decoder.memory(model._features(signal[None])))
            logp = logits.index_fill(-1, torch.tensor(model._never_generated()), float("-inf")).log_softmax(-1)
            picked = logp[0, :-1].gather(1, tokens[0, 1:, None])[:, 0]
            scores.append(picked.sum() / len(ids))
            assert ids and (ids[-1] == eos or len(ids) == 10)
        return torch.stack(scores)

    with torch.no_grad():
        assert bool((mean_logprob(beams) >= mean_logprob(greedy) - 1e-5).all())


def test_sampling_is_seeded_and_generate_refuses_unknown_options():
    model = _model("encdec-transformer").eval()
    ecg = torch.randn(2, 12, 250)
    torch.manual_seed(3)
    a = model.generate(ecg, max_new_tokens=6, do_sample=True, temperature=1.5, top_p=0.9)
    torch.manual_seed(3)
    assert torch.equal(a, model.generate(ecg, max_new_tokens=6, do_sample=True, temperature=1.5, top_p=0.9))
    with pytest.raises(Exception, match="repetition_penalty"):
        model.generate(ecg, max_new_tokens=6, repetition_penalty=1.2)


def _overfit(model: EncDecModel, steps: int = 90) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        labels = torch.arange(8) % 2
        batch = _batch(model, _two_class_ecg(labels, seed=step), [REPORTS[int(c)] for c in labels])
        loss = model(**_inputs(batch)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.slow
@pytest.mark.parametrize("llm", DECODERS)
def test_learns_a_report_that_depends_on_the_ecg_and_the_shuffled_control_breaks_it(llm, tmp_path):
    from meit.evaluation.controls import derangement

    torch.manual_seed(0)
    model = _model(llm)
    _overfit(model)
    model.eval()
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    ecg = _two_class_ecg(labels, seed=999)

    def reports(signals: torch.Tensor, **kw) -> list[str]:
        new = model.generate(signals, max_new_tokens=20, **kw)
        return [" ".join(t.split()) for t in model.tokenizer.batch_decode(new, skip_special_tokens=True)]

    expected = [REPORTS[int(c)] for c in labels]
    assert reports(ecg) == expected
    assert reports(ecg, num_beams=3) == expected
    partner = torch.as_tensor(derangement(len(labels), seed=0))
    shuffled = reports(ecg[partner])
    own = sum(a == b for a, b in zip(shuffled, expected, strict=True))
    assert shuffled == [REPORTS[int(c)] for c in labels[partner]]  # the report follows the ECG it reads
    assert own < len(labels)  # so against each record's own reference, the control loses

    # save → load: the same weights, vocabulary and generations
    model.save_pretrained(tmp_path / "art")
    again = MeitModel.from_pretrained(tmp_path / "art")
    assert isinstance(again, EncDecModel) and again.tokenizer.get_vocab() == model.tokenizer.get_vocab()
    assert reports(ecg) == [" ".join(t.split()) for t in again.tokenizer.batch_decode(
        again.generate(ecg, max_new_tokens=20), skip_special_tokens=True)]
    meta = json.loads((tmp_path / "art" / "meit_model.json").read_text())
    assert meta["architecture"] == "encdec" and meta["vocab_size"] == len(model.tokenizer)
    assert sorted(p.name for p in (tmp_path / "art").glob("*.safetensors")) == ["decoder.safetensors",
                                                                                "encoder.safetensors"]


# ----------------------------------------------------------------------------------------------
# configuration


def test_recipe_keys_are_validated():
    with pytest.raises(ConfigError, match="quantization"):
        load_recipe(None, ["model.llm=encdec-transformer", "model.quantization=4bit"])
    with pytest.raises(ConfigError, match="align"):
        load_recipe(None, ["model.llm=encdec-lstm", "train.stage=align"])
    with pytest.raises(ConfigError, match="multiple of"):
        load_recipe(None, ["model.llm=encdec-lstm", "model.encdec.d_model=30", "model.encdec.heads=4"])
    with pytest.raises(ConfigError, match=r"model\.encdec\.layers"):
        load_recipe(None, ["model.encdec.layer=2"])
    with pytest.raises(ConfigError, match="encoder_width"):
        MeitModel.build(ModelConfig(llm="encdec-lstm", encoder="vit1d-tiny", encdec={"encoder_width": 8}),
                        data_fs=100, data_seconds=2.5, train_reports=["a"])
    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "encdec_quickstart.yaml")
    assert recipe.model.is_encdec and recipe.model.encoder == "resnet1d-18"


def test_encoder_width_and_depth_are_configurable():
    narrow = _model("encdec-lstm", encoder_width=8)
    assert narrow.encoder.out_dim == 8 * 8 and narrow.encoder.builder_kwargs == {"base_width": 8}
    cfg = ModelConfig(llm="encdec-transformer", encoder="resnet1d-34", encdec={**SMALL, "encoder_width": 8})
    deep = MeitModel.build(cfg, data_fs=100, data_seconds=2.5, train_reports=["a b"])
    assert [len(stage) for stage in deep.encoder.stages] == [3, 4, 6, 3]


# ----------------------------------------------------------------------------------------------
# meit train / meit eval / meit generate


TINY = ["model.encoder=resnet1d-tiny", "model.encdec.d_model=32", "model.encdec.layers=1", "model.encdec.heads=4",
        "model.encdec.ff_dim=64", "model.encdec.vocab_min_count=1", "model.max_length=96", "train.batch_size=4",
        "train.lr=3e-3", "train.warmup_ratio=0.0", "train.trackers=[]", "train.log_every=1", "data.fs=100",
        "eval.max_new_tokens=12", "eval.meteor=false", "eval.max_samples=6", "eval.batch_size=3"]


@pytest.mark.slow
@pytest.mark.parametrize("llm", DECODERS)
def test_train_eval_generate_through_the_cli(llm, tmp_path, prepared_100hz, synthetic_raw, capsys):
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text("seed: 3\n")
    run = tmp_path / "run"
    overrides = [f"model.llm={llm}", *TINY, f"data.path={prepared_100hz}", f"output_dir={run}",
                 "train.max_steps=6", "train.eval_every=3", "train.sample_reports=2", "data.max_eval_samples=4"]
    assert main(["train", str(recipe_file), "--no-progress", *overrides]) == 0
    log = [json.loads(line) for line in (run / "logs" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 7)) and "val_loss" in log[2] and len(log[2]["samples"]) == 2
    final = run / "final"
    assert (final / "meit_model.json").is_file() and (final / "recipe.yaml").is_file()
    # its model card: a decoder, no backbone weights, every parameter trained here
    card = json.loads((final / "model_card.json").read_text())["model"]
    assert card["decoder"]["kind"] == llm and card["adaptation"]["method"] == "full"
    assert card["fusion"] is None and card["projector"] is None
    assert "no pretrained weights" in card["backbone"]["licence"]
    assert card["parameters"]["total"] == sum(card["parameters"]["by_part"].values())
    assert "| decoder |" in (final / "MODEL_CARD.md").read_text()

    (tmp_path / "eval_recipe.yaml").write_text((final / "recipe.yaml").read_text())
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", str(final), "--data", str(prepared_100hz), "--recipe",
                 str(tmp_path / "eval_recipe.yaml"), "--out", str(out), "--control", "shuffled", "--num-beams", "2",
                 "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"bleu_1", "bleu_4", "rouge_l", "cider_d", "clinical_micro_f1", "clinical_macro_f1"} <= set(metrics)
    assert "shuffled" in metrics["controls"] and "clinical_micro_f1_drop" in metrics["grounding"]["shuffled"]
    assert metrics["provenance"]["decoding"]["num_beams"] == 2
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    control = [json.loads(line) for line in (out / "controls" / "shuffled" / "predictions.jsonl").read_text()
               .splitlines()]
    assert len(rows) == len(control) == 6 and all(r["ecg_from"] != r["id"] for r in control)
    assert len(json.loads((final / "model_card.json").read_text())["evaluations"]) == 1

    record = sorted((synthetic_raw / "records100").rglob("*.hea"))[0].with_suffix("")
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(final), "--ecg", str(record), "--max-new-tokens", "8"]) == 0
    assert main(["generate", "--checkpoint", str(final), "--ecg", str(record), "--max-new-tokens", "8",
                 "--instruction", "Something else entirely"]) == 0
    assert main(["export", "--checkpoint", str(final), "--out", str(tmp_path / "exported"), "--merge-lora"]) == 0
    assert main(["generate", "--checkpoint", str(tmp_path / "exported"), "--ecg", str(record),
                 "--max-new-tokens", "8"]) == 0
    printed = capsys.readouterr().out.split("\n")
    first, second, exported = printed[0], printed[1], printed[3]  # printed[2]: export's "wrote …" line
    assert first == second  # the instruction never reaches the model
    assert exported == first


@pytest.mark.slow
def test_checkpoint_resume_continues_to_the_same_weights(tmp_path, prepared_100hz):
    from safetensors.torch import load_file

    from meit.training import train

    def recipe(out: Path, *extra: str):
        return load_recipe(None, [f"data.path={prepared_100hz}", f"output_dir={out}", "model.llm=encdec-transformer",
                                  *TINY, "train.max_steps=4", "train.save_every=2", "train.keep_last=5", *extra])

    straight = train(recipe(tmp_path / "a"), progress=False)
    train(recipe(tmp_path / "b"), progress=False)
    # as if the run had died after step 2's checkpoint
    shutil.rmtree(tmp_path / "b" / "final")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-4")
    resumed = train(recipe(tmp_path / "b", "train.resume=auto"), progress=False)
    assert resumed.steps == 4
    for name in ("encoder.safetensors", "decoder.safetensors"):
        a, b = load_file(straight.final_dir / name), load_file(resumed.final_dir / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_the_quickstart_report_describes_the_baseline_without_llm_terms():
    from meit.config import load_recipe
    from meit.quickstart import model_description

    baseline = model_description(load_recipe("recipes/quickstart.yaml", ["model.llm=encdec-lstm"]), 100, "fp32")
    assert baseline.startswith("No LLM: `encdec-lstm`") and "LoRA" not in baseline and "fusion" not in baseline
    llm = model_description(load_recipe("recipes/quickstart.yaml"), 100, "fp32")
    assert "fusion `kv`" in llm and "LoRA r=16" in llm
