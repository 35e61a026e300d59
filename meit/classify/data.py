"""Labelled records → ``{"ecg", "targets", "id"}`` batches, through the encoder contract's load-time transform.

The same transform training, evaluation and generation use (:func:`meit.data.dataset.contract_transform`): a
paper image is drawn (or read from a ``meit render`` cache), augmented only for training — seeded by record and
epoch — denoised if the contract says so, resized and normalised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from meit.classify.labels import SplitLabels
from meit.data.image_transform import apply_transform


class LabelledEcgDataset(Dataset):
    """The labelled rows of a split; ``transform`` turns one stored signal into the encoder's input."""

    def __init__(self, split: Any, labels: SplitLabels, transform: Any) -> None:
        self.split = split.select_columns(["id", "ecg"]).with_format("numpy", columns=["ecg"],
                                                                     output_all_columns=True)
        self.labels = labels
        self.transform = transform
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.labels.rows)

    def set_epoch(self, epoch: int) -> None:
        """The training epoch: image augmentations are seeded per record and epoch."""
        self.epoch = int(epoch)

    @property
    def ids(self) -> list[str]:
        return [str(i) for i in self.split.select(self.labels.rows.tolist())["id"]]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        rows = [int(self.labels.rows[i]) for i in indices]
        columns = self.split[rows]
        out = []
        for i, record_id, signal in zip(indices, columns["id"], columns["ecg"], strict=True):
            ecg = apply_transform(self.transform, np.asarray(signal, dtype=np.float32), str(record_id), self.epoch)
            out.append({"id": str(record_id), "ecg": torch.from_numpy(np.ascontiguousarray(ecg, dtype=np.float32)),
                        "targets": torch.from_numpy(self.labels.targets[i])})
        return out


def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": [e["id"] for e in examples], "ecg": torch.stack([e["ecg"] for e in examples]),
            "targets": torch.stack([e["targets"] for e in examples])}
