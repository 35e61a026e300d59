"""ECG–report pairs for contrastive pretraining: a memory-mapped split → {ecg, report} → tokenised batches."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


def report_key(text: str) -> int:
    """A stable 63-bit id of a report's wording (case and spacing ignored): equal reports, equal keys."""
    canonical = re.sub(r"\s+", " ", text.strip().lower())
    return int.from_bytes(hashlib.blake2b(canonical.encode(), digest_size=8).digest(), "little") >> 1


class EcgTextDataset(Dataset):
    """One prepared row → ``{"id", "ecg", "report"}`` with the encoder's load-time transform applied."""

    def __init__(self, split: Any, transform: Callable[[np.ndarray], np.ndarray]) -> None:
        self.split = split.select_columns(["id", "ecg", "fs", "report"]).with_format(
            "numpy", columns=["ecg"], output_all_columns=True
        )
        self.transform = transform
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.split)

    def set_epoch(self, epoch: int) -> None:
        """The training epoch (seeds image augmentations per record and epoch, so a resumed run draws the same)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        from meit.data.image_transform import apply_transform

        columns = self.split[[int(i) for i in indices]]
        return [
            {"id": str(i), "report": str(r), "ecg": torch.from_numpy(np.ascontiguousarray(apply_transform(
                self.transform, np.asarray(s, dtype=np.float32), str(i), self.epoch), dtype=np.float32))}
            for i, s, r in zip(columns["id"], columns["ecg"], columns["report"], strict=True)
        ]

    def ids(self) -> list[str]:
        return [str(i) for i in self.split["id"]]

    def reports(self) -> list[str]:
        return [str(r) for r in self.split["report"]]


@dataclass
class EcgTextCollator:
    """Stacks ECGs and tokenises reports (padding to the batch's longest); no device moves here."""

    tokenizer: Any
    max_length: int = 128

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        reports = [ex["report"] for ex in examples]
        tokens = self.tokenizer(reports, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        return {
            "ecg": torch.stack([ex["ecg"] for ex in examples]),
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "report_key": torch.tensor([report_key(r) for r in reports], dtype=torch.long),
            "ids": [ex["id"] for ex in examples],
            "reports": reports,
        }


def prepared_split(contract: Any, data_path: str | Path, split: str, max_samples: int | None = None, *,
                   augment: bool = False, image_cache: str | Path | None = None) -> EcgTextDataset:
    """A split of a prepared dataset, transformed at load time to an encoder ``contract`` (fs, seconds,
    filtering, normalisation, an image: ``contract.load_transform``) from the split's stored rate — the one path
    pretraining, retrieval and zero-shot share. ``augment``: training augmentations of an image contract;
    ``image_cache``: a ``meit render`` folder to read its images from."""
    from meit.data.dataset import contract_transform, dataset_fs, load_split

    rows = load_split(data_path, split, max_samples)
    transform = contract_transform(contract, dataset_fs(rows, data_path), augment=augment, image_cache=image_cache,
                                   split_name=split, data_path=data_path)
    return EcgTextDataset(rows, transform)
