"""Dynamic padding (right for training, left for generation); training orders live in ``sampling``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from meit.data.prompts import IGNORE_INDEX


@dataclass
class EcgCollator:
    """Pads each batch to its own longest example; nothing here moves tensors to a device."""

    pad_token_id: int
    padding_side: Literal["right", "left"] = "right"
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        longest = max(len(ex["input_ids"]) for ex in examples)
        if self.pad_to_multiple_of:
            longest = math.ceil(longest / self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(examples)
        input_ids = torch.full((batch, longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, longest), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((batch, longest), dtype=torch.long)
        ecg_mask = torch.zeros((batch, longest), dtype=torch.bool)
        for row, ex in enumerate(examples):
            n = len(ex["input_ids"])
            cols = slice(longest - n, longest) if self.padding_side == "left" else slice(0, n)
            input_ids[row, cols] = torch.tensor(ex["input_ids"], dtype=torch.long)
            labels[row, cols] = torch.tensor(ex["labels"], dtype=torch.long)
            attention[row, cols] = 1
            ecg_mask[row, cols] = torch.tensor(ex["ecg_mask"], dtype=torch.bool)
        return {
            "ecg": torch.stack([ex["ecg"] for ex in examples]),
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "ecg_mask": ecg_mask,
            "ids": [ex["id"] for ex in examples],
            "reports": [ex["report"] for ex in examples],
        }


def model_inputs(batch: dict[str, Any], with_labels: bool = True) -> dict[str, torch.Tensor]:
    """The tensors ``MeitModel.forward`` takes (drops ids / report strings)."""
    keys = ["ecg", "input_ids", "attention_mask", "ecg_mask"] + (["labels"] if with_labels else [])
    return {k: batch[k] for k in keys}
