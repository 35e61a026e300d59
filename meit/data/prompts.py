"""Turn (instruction, report) into token ids with ECG positions and labels masked to the report.

The ECG positions are given to the model as an explicit boolean mask (``ecg_mask``), never found by
searching for a token id: the placeholder id is arbitrary and a model can generate it.

A backbone whose tokenizer starts every text with BOS (Llama-1/2, Mistral, Gemma) gets it here too, at
position 0 and before the ECG: its pretrained attention expects BOS first, with either template (the
plain one has none of its own; a chat template's leading BOS is moved in front of the ECG slot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from meit.errors import ModelError

IGNORE_INDEX = -100
#: MEIT's prompt for base models (the report follows, then the EOS token)
PLAIN_TEMPLATE = "<|user|>\n{instruction}\n<|assistant|>\n"
_MARKER = "\u2063ECG\u2063"  # invisible separators: never in an instruction


@dataclass(frozen=True)
class PromptFormat:
    """How one backbone wants its prompt; comes from the model (template, ECG slots) and the recipe."""

    template: Literal["chat", "plain"]
    num_ecg_tokens: int
    placement: Literal["start", "inline"]
    placeholder_id: int
    max_length: int
    system_prompt: str | None = None  # None: the chat template's default system message, if it has one

    @classmethod
    def from_model(cls, model: Any, max_length: int) -> PromptFormat:
        return cls(
            template=model.backbone.template,
            num_ecg_tokens=model.num_ecg_tokens,
            placement=model.ecg_placement,
            placeholder_id=model.ecg_placeholder_id,
            max_length=max_length,
            system_prompt=model.cfg.system_prompt,
        )


@dataclass
class EncodedExample:
    input_ids: list[int]
    labels: list[int]
    ecg_mask: list[bool]

    def __len__(self) -> int:
        return len(self.input_ids)


def _prompt_halves(tokenizer: Any, fmt: PromptFormat, instruction: str) -> tuple[str, str]:
    """Render the prompt with a marker where the ECG goes; return the text before and after it."""
    user = f"{_MARKER}\n{instruction}" if fmt.placement == "inline" else instruction
    if fmt.template == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError(
                "backbone template is 'chat' but its tokenizer has no chat_template; "
                "use a backbone entry with template 'plain' for base models"
            )
        messages = [{"role": "user", "content": user}]
        if fmt.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": fmt.system_prompt})
        try:
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as err:  # jinja raises its own error types from the template's raise_exception
            if fmt.system_prompt is None:
                raise
            raise ModelError(f"the backbone's chat template refuses a system message ({err}); "
                             "set model.system_prompt=null") from err
    else:
        text = PLAIN_TEMPLATE.format(instruction=user)
        if fmt.system_prompt:
            text = f"{fmt.system_prompt}\n{text}"
    if fmt.placement == "inline":
        before, _, after = text.partition(_MARKER)
        return before, after
    return "", text


def expects_bos(tokenizer: Any) -> bool:
    """True when the tokenizer puts BOS in front of every text it encodes (so the model was trained so)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return bos is not None and list(tokenizer("x", add_special_tokens=True)["input_ids"][:1]) == [bos]


def _leading_bos(tokenizer: Any, text: str) -> tuple[list[int], str]:
    """The BOS id to put first (if the tokenizer expects one) and ``text`` without a rendered BOS."""
    if not expects_bos(tokenizer):
        return [], text
    token = getattr(tokenizer, "bos_token", None) or ""
    return [tokenizer.bos_token_id], text[len(token):] if token and text.startswith(token) else text


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def encode_prompt(tokenizer: Any, fmt: PromptFormat, instruction: str) -> EncodedExample:
    """Prompt only (for generation): ECG slots + rendered instruction, ending where the report starts."""
    before, after = _prompt_halves(tokenizer, fmt, instruction)
    ecg = [fmt.placeholder_id] * fmt.num_ecg_tokens
    if fmt.placement == "start":
        bos, after = _leading_bos(tokenizer, after)
        tail = _ids(tokenizer, after)
        ids = bos + ecg + tail
        mask = [False] * len(bos) + [True] * len(ecg) + [False] * len(tail)
    else:
        bos, before = _leading_bos(tokenizer, before)
        head = bos + _ids(tokenizer, before)
        tail = _ids(tokenizer, after)
        ids = head + ecg + tail
        mask = [False] * len(head) + [True] * len(ecg) + [False] * len(tail)
    if len(ids) >= fmt.max_length:
        raise ModelError(
            f"prompt takes {len(ids)} tokens but model.max_length is {fmt.max_length}; "
            "raise model.max_length or shorten the instruction"
        )
    return EncodedExample(input_ids=ids, labels=[IGNORE_INDEX] * len(ids), ecg_mask=mask)


def encode_example(tokenizer: Any, fmt: PromptFormat, instruction: str, report: str,
                   prompt: EncodedExample | None = None) -> EncodedExample:
    """Prompt + report + EOS, truncated to ``max_length``; loss only on the report tokens and EOS.

    ``prompt`` may be passed when already encoded (the instruction pool is small; rendering a chat
    template per example costs more than everything else in the loader).
    """
    prompt = prompt or encode_prompt(tokenizer, fmt, instruction)
    target = _ids(tokenizer, report.strip())
    eos = tokenizer.eos_token_id
    if eos is not None:
        target = [*target, eos]
    room = fmt.max_length - len(prompt.input_ids)
    target = target[:room]
    return EncodedExample(
        input_ids=prompt.input_ids + target,
        labels=prompt.labels + target,
        ecg_mask=prompt.ecg_mask + [False] * len(target),
    )
