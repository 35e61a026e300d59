"""The served model: one artifact loaded once, prompts built and batches generated the way ``meit generate`` does.

:meth:`ReportEngine.prepare` applies the encoder contract's load transform (the transform of
:func:`meit.inference.generation.generate_for_signal`); :meth:`ReportEngine.generate` decodes any number of
(ECG, instruction) rows as one left-padded batch through :func:`meit.inference.generation.generate_batch`,
so a batched row and the same row alone get the same greedy text.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from meit.data.collator import EcgCollator
from meit.data.dataset import evaluation_instruction
from meit.data.prompts import EncodedExample, PromptFormat, encode_prompt
from meit.inference.generation import DecodingSettings, generate_batch
from meit.serve.settings import Decoding


@dataclass(frozen=True)
class Row:
    """One prompt to decode: a transformed ECG (``leads × samples`` of the contract) and its instruction."""

    ecg: torch.Tensor
    instruction: str


class ReportEngine:
    """A loaded model plus its prompt format; :meth:`generate` is not re-entrant (one batch at a time)."""

    def __init__(self, model: Any, checkpoint: Path, decoding: Decoding) -> None:
        self.model = model.eval()
        self.checkpoint = checkpoint
        self.settings = DecodingSettings(max_new_tokens=decoding.max_new_tokens, num_beams=decoding.num_beams)
        self.max_length = int(getattr(getattr(model, "cfg", None), "max_length", 128))
        self.format = PromptFormat.from_model(model, self.max_length)
        self.contract = model.encoder.contract
        self.collate = EcgCollator(model.tokenizer.pad_token_id, padding_side="left")
        self._prompts: dict[str, EncodedExample] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, checkpoint: str | Path, decoding: Decoding, *, trust_remote_code: bool = False) -> ReportEngine:
        from meit.models import MeitModel

        path = Path(checkpoint).expanduser()
        return cls(MeitModel.from_pretrained(path, trust_remote_code=trust_remote_code), path, decoding)

    @property
    def default_instruction(self) -> str:
        return evaluation_instruction()

    def prepare(self, signal: np.ndarray, fs: int) -> torch.Tensor:
        """``(12, T)`` mV at ``fs`` → the encoder's input tensor (the contract's filters, crop and normalisation)."""
        return torch.from_numpy(np.ascontiguousarray(self.contract.load_transform(fs)(signal), dtype=np.float32))

    def _prompt(self, instruction: str) -> EncodedExample:
        if instruction not in self._prompts:
            if len(self._prompts) > 256:  # questions are free text: bound the cache
                self._prompts.clear()
            self._prompts[instruction] = encode_prompt(self.model.tokenizer, self.format, instruction)
        return self._prompts[instruction]

    def generate(self, rows: list[Row]) -> list[str]:
        """The text of every row, decoded together as one batch."""
        with self._lock:
            examples = []
            for i, row in enumerate(rows):
                prompt = self._prompt(row.instruction)
                examples.append({"id": str(i), "report": "", "ecg": row.ecg, "input_ids": prompt.input_ids,
                                 "labels": prompt.labels, "ecg_mask": prompt.ecg_mask})
            torch.manual_seed(self.settings.seed)
            return generate_batch(self.model, self.collate(examples), self.settings)
