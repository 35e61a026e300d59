"""Prepared datasets on disk → model-ready examples, memory-mapped (never all in RAM).

The encoder's input contract decides the transform (resample, crop/pad, normalisation); the backbone
decides the prompt. Both are applied here, at load time, never baked into the stored signal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from meit.data.contract import EncoderContract
from meit.data.image_transform import apply_transform
from meit.data.instructions import DEFAULT_INSTRUCTION, choose_instruction
from meit.data.prompts import EncodedExample, PromptFormat, encode_example, encode_prompt
from meit.errors import DataError

REQUIRED_COLUMNS = ("id", "patient_id", "ecg", "fs", "report")


def load_prepared(path: str | Path) -> Any:
    """``datasets.load_from_disk`` with errors that say what is wrong with the folder."""
    from datasets import DatasetDict, load_from_disk

    root = Path(path)
    if not root.exists():
        raise DataError(f"prepared dataset not found: {root} (create one with `meit prep …` or `meit synth`)")
    try:
        dataset = load_from_disk(str(root))
    except Exception as err:  # datasets raises several types for a bad folder
        raise DataError(f"{root} is not a prepared dataset (datasets.load_from_disk failed: {err})") from err
    if not isinstance(dataset, DatasetDict):
        raise DataError(f"{root} holds a single Dataset; expected a DatasetDict with train/validation/test")
    for split_name, split in dataset.items():
        missing = [c for c in REQUIRED_COLUMNS if c not in split.column_names]
        if missing:
            raise DataError(f"{root} split '{split_name}' lacks column(s) {missing}; required: {REQUIRED_COLUMNS}")
    return dataset


def get_split(dataset: Any, name: str, root: str | Path = "") -> Any:
    if name not in dataset:
        raise DataError(f"prepared dataset {root} has no split '{name}'; it has {sorted(dataset.keys())}")
    return dataset[name]


def load_split(path: str | Path, name: str, max_samples: int | None = None) -> Any:
    """Split ``name`` of the prepared dataset at ``path`` (its first ``max_samples`` rows); empty is an error."""
    split = get_split(load_prepared(path), name, path)
    if len(split) == 0:
        raise DataError(f"split '{name}' of {path} is empty")
    if max_samples is not None:
        split = split.select(range(min(max_samples, len(split))))
    return split


def dataset_fs(split: Any, root: str | Path = "") -> int:
    """The single sampling rate of a split (the contract says one fs per prepared dataset)."""
    if len(split) == 0:
        raise DataError(f"split of {root} is empty")
    return int(split[0]["fs"])


class EcgReportDataset(Dataset):
    """One row → {ecg, input_ids, labels, ecg_mask, id, report} for training or prompting."""

    def __init__(
        self,
        split: Any,
        tokenizer: Any,
        prompt_format: PromptFormat,
        transform: Callable[[np.ndarray], np.ndarray],
        *,
        instruction_seed: int = 0,
        fixed_instruction: str | None = None,
        with_report: bool = True,
        perturb: Callable[[np.ndarray, int, str], np.ndarray] | None = None,
    ) -> None:
        self.split = split.select_columns(["id", "ecg", "fs", "report"]).with_format(
            "numpy", columns=["ecg"], output_all_columns=True
        )
        self.tokenizer = tokenizer
        self.fmt = prompt_format
        self.transform = transform
        self.instruction_seed = instruction_seed
        self.fixed_instruction = fixed_instruction
        self.with_report = with_report
        self.perturb = perturb
        self.epoch = 0
        self._prompts: dict[str, EncodedExample] = {}

    def __len__(self) -> int:
        return len(self.split)

    def set_epoch(self, epoch: int) -> None:
        """The training epoch (seeds image augmentations per record and epoch, so a resumed run draws the same)."""
        self.epoch = int(epoch)

    def instruction_for(self, record_id: str) -> str:
        if self.fixed_instruction is not None:
            return self.fixed_instruction
        return choose_instruction(record_id, self.instruction_seed)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """Fetch a whole batch in one arrow read (``DataLoader`` calls this when it exists): the
        per-row formatting of ``datasets`` costs more than the transform and tokenisation together."""
        columns = self.split[[int(i) for i in indices]]
        return [
            self._example(str(record_id), signal, int(fs), str(report))
            for record_id, signal, fs, report in zip(
                columns["id"], columns["ecg"], columns["fs"], columns["report"], strict=True
            )
        ]

    def _encode(self, record_id: str, report: str) -> EncodedExample:
        instruction = self.instruction_for(record_id)
        prompt = self._prompts.get(instruction)
        if prompt is None:
            prompt = self._prompts[instruction] = encode_prompt(self.tokenizer, self.fmt, instruction)
        return encode_example(self.tokenizer, self.fmt, instruction, report, prompt) if self.with_report else prompt

    def reports(self) -> list[str]:
        """Every record's reference report, in order (no signal is read)."""
        return [str(r) for r in self.split["report"]]

    def token_lengths(self) -> list[int]:
        """Each example's token count, from the id and report columns only (no signal is read)."""
        return [len(self._encode(str(i), str(r))) for i, r in zip(self.split["id"], self.split["report"], strict=True)]

    def _example(self, record_id: str, signal: np.ndarray, fs: int, report: str) -> dict[str, Any]:
        signal = np.asarray(signal, dtype=np.float32)
        if self.perturb is not None:
            signal = self.perturb(signal, fs, record_id)
        # a perturbed signal is never swapped for a pre-rendered image of the clean one
        ecg = apply_transform(self.transform, signal, record_id, self.epoch, from_cache=self.perturb is None)
        encoded = self._encode(record_id, report)
        return {
            "id": record_id,
            "report": report,
            "ecg": torch.from_numpy(np.ascontiguousarray(ecg, dtype=np.float32)),
            "input_ids": encoded.input_ids,
            "labels": encoded.labels,
            "ecg_mask": encoded.ecg_mask,
        }


def report_dataset(
    path: str | Path,
    split_name: str,
    *,
    tokenizer: Any,
    prompt_format: PromptFormat,
    contract: EncoderContract,
    max_samples: int | None = None,
    instruction_seed: int = 0,
    fixed_instruction: str | None = None,
    with_report: bool = True,
    perturb: Callable[[np.ndarray, int, str], np.ndarray] | None = None,
    augment: bool = False,
    image_cache: str | Path | None = None,
) -> EcgReportDataset:
    """Split ``split_name`` of the prepared dataset at ``path``, as examples for a model whose encoder declares
    ``contract`` and whose backbone formats prompts as ``prompt_format`` (training, evaluation and benchmarks
    all assemble datasets here). ``augment`` (the training split only) applies an image contract's
    augmentations; ``image_cache`` is a ``meit render`` folder of the same records to read images from."""
    split = load_split(path, split_name, max_samples)
    return EcgReportDataset(
        split, tokenizer, prompt_format, contract_transform(contract, dataset_fs(split, path), augment=augment,
                                                            image_cache=image_cache, split_name=split_name,
                                                            data_path=path),
        instruction_seed=instruction_seed, fixed_instruction=fixed_instruction, with_report=with_report,
        perturb=perturb,
    )


def contract_transform(contract: EncoderContract, fs_in: int, *, augment: bool = False,
                       image_cache: str | Path | None = None, split_name: str | None = None,
                       data_path: str | Path | None = None) -> Any:
    """``contract.load_transform`` with a rendered cache (``meit render`` output of ``split_name`` of the dataset at
    ``data_path``) opened when one is named; a signal contract ignores it."""
    cache = None
    if image_cache is not None and contract.is_image:
        from meit.data.rendered_cache import RenderedCache

        cache = RenderedCache.open(image_cache, split_name, data_path)
    return contract.load_transform(fs_in, augment=augment, image_cache=cache)


def evaluation_instruction() -> str:
    """The single instruction used at evaluation, so scores never depend on the paraphrase drawn."""
    return DEFAULT_INSTRUCTION
