"""Report generation with the KV cache: batches of a dataset (left-padded prompts, only new tokens decoded)
and one ECG at a time (``meit generate``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from meit.data.collator import EcgCollator
from meit.data.dataset import evaluation_instruction
from meit.data.prompts import PromptFormat, encode_prompt


@dataclass(frozen=True)
class DecodingSettings:
    max_new_tokens: int = 96
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams,
                                  "do_sample": self.do_sample}
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        return kwargs

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def generate_batch(model: Any, batch: dict[str, Any], settings: DecodingSettings) -> list[str]:
    """Decode one left-padded collated batch; returns the new text of each row, whitespace-normalised."""
    tokenizer = model.tokenizer
    device = next(model.parameters()).device
    new_tokens = model.generate(
        ecg=batch["ecg"].to(device),
        input_ids=batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
        ecg_mask=batch["ecg_mask"].to(device),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **settings.generate_kwargs(),
    )
    return [" ".join(text.split()) for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


@torch.no_grad()
def generate_reports(
    model: Any,
    dataset: Any,
    settings: DecodingSettings,
    *,
    batch_size: int = 16,
    progress: bool = True,
    desc: str = "generate",
) -> list[dict[str, str]]:
    """Generate one report per row of ``dataset`` (an ``EcgReportDataset`` built with ``with_report=False``)."""
    collator = EcgCollator(pad_token_id=model.tokenizer.pad_token_id, padding_side="left")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collator)
    was_training = model.training
    model.eval()
    torch.manual_seed(settings.seed)
    rows: list[dict[str, str]] = []
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        texts = generate_batch(model, batch, settings)
        for record_id, reference, text in zip(batch["ids"], batch["reports"], texts, strict=True):
            rows.append({"id": record_id, "prediction": text, "reference": reference})
    model.train(was_training)
    return rows


@torch.no_grad()
def generate_for_signal(model: Any, signal: np.ndarray, fs: int, *, instruction: str | None = None,
                        settings: DecodingSettings | None = None, max_length: int = 128) -> str:
    """One ECG (``leads × T`` mV at ``fs`` Hz) in, one report out, through the encoder contract's transform."""
    settings = settings or DecodingSettings()
    fmt = PromptFormat.from_model(model, max_length)
    encoded = encode_prompt(model.tokenizer, fmt, instruction or evaluation_instruction())
    ecg = torch.from_numpy(model.encoder.contract.load_transform(fs)(signal).astype(np.float32))
    example = {"id": "input", "report": "", "ecg": ecg, "input_ids": encoded.input_ids,
               "labels": encoded.labels, "ecg_mask": encoded.ecg_mask}
    batch = EcgCollator(model.tokenizer.pad_token_id, padding_side="left")([example])
    model.eval()
    torch.manual_seed(settings.seed)
    return generate_batch(model, batch, settings)[0]
