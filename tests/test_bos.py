"""BOS where the tokenizer expects it, and the kv slot after it (issue 19, item 7).

Llama-1/2, Mistral and Gemma tokenizers put BOS in front of every text; their models never saw a
sequence without it. The plain template (MEIT's, for base models) used to drop it, and a chat template's
BOS used to sit behind the ECG slot. The tiny test tokenizers add no BOS, so one is switched on here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meit.data.collator import EcgCollator
from meit.data.prompts import PromptFormat, encode_example, encode_prompt, expects_bos
from meit.errors import DataError
from meit.inference.generation import DecodingSettings, generate_for_signal

from .test_models_fusion import FS, SECONDS, make_model

SLOT = 7


def _tokenizer(bos: bool, chat_bos: bool = False):
    from meit.models.backbones import resolve_backbone
    from meit.models.loading import load_tokenizer, source_folder

    tok = load_tokenizer(source_folder(resolve_backbone("tiny-llama")))
    tok.add_bos_token = bos
    if chat_bos:  # a template that renders BOS itself, as Llama-2's and Gemma's do
        tok.chat_template = "{{ bos_token }}" + tok.chat_template
    return tok


def _fmt(template: str, placement: str) -> PromptFormat:
    return PromptFormat(template=template, num_ecg_tokens=2 if placement == "inline" else 1, placement=placement,
                        placeholder_id=SLOT, max_length=96)


@pytest.mark.parametrize("template", ["plain", "chat"])
def test_bos_comes_first_and_the_kv_slot_right_after(template):
    tok = _tokenizer(bos=True, chat_bos=template == "chat")
    assert expects_bos(tok)
    encoded = encode_prompt(tok, _fmt(template, "start"), "describe the ecg")
    assert encoded.input_ids[:2] == [tok.bos_token_id, SLOT] and encoded.ecg_mask[:3] == [False, True, False]
    assert encoded.input_ids.count(tok.bos_token_id) == 1  # a rendered BOS is moved, never doubled


@pytest.mark.parametrize("template", ["plain", "chat"])
def test_prefix_prompts_start_with_bos_too(template):
    tok = _tokenizer(bos=True, chat_bos=template == "chat")
    encoded = encode_prompt(tok, _fmt(template, "inline"), "describe the ecg")
    assert encoded.input_ids[0] == tok.bos_token_id and encoded.input_ids.count(tok.bos_token_id) == 1
    assert sum(encoded.ecg_mask) == 2 and not encoded.ecg_mask[0]
    example = encode_example(tok, _fmt(template, "inline"), "describe the ecg", "sinus rhythm")
    assert example.labels[: len(encoded.input_ids)] == [-100] * len(encoded.input_ids)


def test_tokenizers_without_bos_are_unchanged():
    tok = _tokenizer(bos=False)
    assert not expects_bos(tok)
    assert encode_prompt(tok, _fmt("plain", "start"), "describe the ecg").input_ids[0] == SLOT


def test_a_bos_model_trains_and_generates_with_the_slot_after_bos():
    model = make_model("tiny-llama", "kv")
    model.tokenizer.add_bos_token = True
    fmt = PromptFormat.from_model(model, 96)
    examples = []
    for i, report in enumerate(["sinus rhythm", "atrial fibrillation with rapid ventricular response"]):
        encoded = encode_example(model.tokenizer, fmt, "describe the ecg", report)
        examples.append({"id": str(i), "report": report, "ecg": torch.randn(12, int(FS * SECONDS)),
                         "input_ids": encoded.input_ids, "labels": encoded.labels, "ecg_mask": encoded.ecg_mask})
    batch = EcgCollator(model.tokenizer.pad_token_id, padding_side="left")(examples)
    out = model(batch["ecg"], batch["input_ids"], batch["attention_mask"], batch["ecg_mask"], labels=batch["labels"])
    assert torch.isfinite(out.loss)
    text = generate_for_signal(model, np.random.default_rng(0).normal(size=(12, int(FS * SECONDS))), FS,
                               settings=DecodingSettings(max_new_tokens=4), max_length=96)
    assert isinstance(text, str)
    # the old layout (slot before BOS) is refused with the positions named
    ids = batch["input_ids"].clone()
    mask = batch["ecg_mask"].clone()
    first = batch["attention_mask"].long().argmax(dim=1)
    rows = torch.arange(len(ids))
    ids[rows, first], ids[rows, first + 1] = SLOT, model.tokenizer.bos_token_id
    mask[rows, first], mask[rows, first + 1] = True, False
    with pytest.raises(DataError, match=r"right after the tokenizer's BOS"):
        model(batch["ecg"], ids, batch["attention_mask"], mask)
