"""Prompt encoding (ECG slots by mask, loss on the report only) and the padding collator."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from meit.data.collator import EcgCollator, model_inputs
from meit.data.instructions import INSTRUCTIONS, choose_instruction
from meit.data.prompts import IGNORE_INDEX, PromptFormat, encode_example, encode_prompt
from meit.data.sampling import LengthGroupedSampler
from meit.errors import ModelError
from tests.tokenizer_fixture import make_tokenizer

TOK = make_tokenizer()
PLACEHOLDER = 3


def fmt(template="chat", n=1, placement="start", max_length=64, system_prompt=None):
    return PromptFormat(template=template, num_ecg_tokens=n, placement=placement, placeholder_id=PLACEHOLDER,
                        max_length=max_length, system_prompt=system_prompt)


def test_instruction_pool_is_large_and_choice_is_stable():
    assert len(set(INSTRUCTIONS)) >= 50
    assert choose_instruction("rec-1", 0) == choose_instruction("rec-1", 0)
    drawn = {choose_instruction(f"rec-{i}", 7) for i in range(500)}
    assert len(drawn) > 40
    assert {choose_instruction(f"r{i}", 1) for i in range(50)} != {choose_instruction(f"r{i}", 2) for i in range(50)}


@pytest.mark.parametrize("template", ["chat", "plain"])
def test_kv_slot_sits_first_and_labels_cover_report_only(template):
    ex = encode_example(TOK, fmt(template), "write the report", "sinus rhythm .")
    assert ex.ecg_mask[0] and sum(ex.ecg_mask) == 1
    assert ex.input_ids[0] == PLACEHOLDER
    report_ids = TOK("sinus rhythm .", add_special_tokens=False)["input_ids"] + [TOK.eos_token_id]
    supervised = [t for t in ex.labels if t != IGNORE_INDEX]
    assert supervised == report_ids
    assert ex.input_ids[-len(report_ids):] == report_ids
    assert all(label == IGNORE_INDEX for label, m in zip(ex.labels, ex.ecg_mask, strict=True) if m)


@pytest.mark.parametrize("template", ["chat", "plain"])
def test_system_prompt_is_rendered_before_the_instruction(template):
    # the fixture's word-level vocabulary: "normal ecg block" stands for a system message
    text = TOK.decode(encode_prompt(TOK, fmt(template, system_prompt="normal ecg block"), "write the report").input_ids)
    assert text.index("normal ecg block") < text.index("write the report")
    without = TOK.decode(encode_prompt(TOK, fmt(template), "write the report").input_ids)
    assert "block" not in without


def test_a_chat_template_that_refuses_a_system_message_names_the_key():
    strict = make_tokenizer()
    strict.chat_template = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
                            "{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(ModelError, match=r"model\.system_prompt"):
        encode_prompt(strict, fmt(system_prompt=""), "write the report")


def test_prefix_slots_sit_inside_the_user_turn():
    ex = encode_prompt(TOK, fmt("chat", n=4, placement="inline"), "write the report")
    positions = [i for i, m in enumerate(ex.ecg_mask) if m]
    assert len(positions) == 4 and positions == list(range(positions[0], positions[0] + 4))
    before = TOK.decode(ex.input_ids[: positions[0]])
    assert "user" in before and "assistant" not in before
    assert all(ex.input_ids[i] == PLACEHOLDER for i in positions)


def test_truncation_keeps_prompt_and_length_limit():
    ex = encode_example(TOK, fmt(max_length=20), "write the report", " ".join(["sinus rhythm"] * 40))
    assert len(ex) == 20
    prompt_len = len(encode_prompt(TOK, fmt(max_length=20), "write the report").input_ids)
    assert all(label == IGNORE_INDEX for label in ex.labels[:prompt_len])
    with pytest.raises(ModelError, match="max_length"):
        encode_prompt(TOK, fmt(max_length=5), "write the report")


def test_chat_template_required_for_chat_backbones():
    with pytest.raises(ModelError, match="chat_template"):
        encode_prompt(make_tokenizer(chat=False), fmt("chat"), "write the report")


def _examples(lengths):
    return [
        {"id": str(i), "report": "r", "ecg": torch.full((12, 10), float(i)), "input_ids": list(range(5, 5 + n)),
         "labels": [IGNORE_INDEX] * (n - 1) + [7], "ecg_mask": [True] + [False] * (n - 1)}
        for i, n in enumerate(lengths)
    ]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=2, max_value=12), min_size=1, max_size=6), st.sampled_from(["left", "right"]))
def test_collator_pads_dynamically_on_the_requested_side(lengths, side):
    batch = EcgCollator(pad_token_id=0, padding_side=side)(_examples(lengths))
    longest = max(lengths)
    assert batch["input_ids"].shape == (len(lengths), longest)
    assert batch["ecg"].shape == (len(lengths), 12, 10)
    for row, n in enumerate(lengths):
        mask = batch["attention_mask"][row]
        assert int(mask.sum()) == n
        real = mask.nonzero().flatten()
        assert (real[0].item() == longest - n) if side == "left" else (real[-1].item() == n - 1)
        assert (batch["labels"][row][mask == 0] == IGNORE_INDEX).all()
        assert not batch["ecg_mask"][row][mask == 0].any()
        assert batch["ecg_mask"][row].sum() == 1
    assert set(model_inputs(batch)) == {"ecg", "input_ids", "attention_mask", "ecg_mask", "labels"}


def test_length_grouped_sampler_is_a_seeded_permutation_grouping_lengths():
    lengths = [(i * 37) % 50 + 1 for i in range(400)]
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=3, mega_batch_mult=10)
    first = list(sampler)
    assert sorted(first) == list(range(400)) and first == list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    spread = [max(lengths[i] for i in first[k:k + 8]) - min(lengths[i] for i in first[k:k + 8])
              for k in range(0, 400, 8)]
    assert sum(spread) / len(spread) < 10  # random batches would spread ~40
