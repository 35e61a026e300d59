"""One ECG in, one report out: the path behind ``meit generate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from meit.data.collator import EcgCollator
from meit.data.dataset import evaluation_instruction
from meit.data.prompts import PromptFormat, encode_prompt
from meit.errors import DataError
from meit.evaluation.generation import DecodingSettings, generate_batch
from meit.leads import CANONICAL_LEADS


def read_ecg_file(path: str | Path, fs: int | None = None) -> tuple[np.ndarray, int]:
    """A wfdb record (path with or without extension) or a ``.npy`` array (12 × T, mV, canonical order)."""
    file = Path(path)
    if file.suffix == ".npy":
        if fs is None:
            raise DataError(f"{file}: an array file carries no sampling rate; pass --fs")
        array = np.load(file, allow_pickle=False)
        if array.ndim != 2 or len(CANONICAL_LEADS) not in array.shape:
            raise DataError(f"{file}: expected a 12 × T array in canonical lead order, got shape {array.shape}")
        if array.shape[0] != len(CANONICAL_LEADS):
            array = array.T
        return array.astype(np.float32), fs
    from data_prep.common import RecordRejected, SignalPolicy, read_signal

    record_path = file.with_suffix("") if file.suffix in {".hea", ".dat"} else file
    if not Path(f"{record_path}.hea").is_file():
        raise DataError(f"{record_path}.hea not found: pass a wfdb record path or a .npy array")
    import wfdb

    try:
        header = wfdb.rdheader(str(record_path))
    except Exception as err:  # wfdb raises many types for a broken header
        raise DataError(f"cannot read wfdb header {record_path}.hea: {err}") from err
    if not header.fs or not header.sig_len:
        raise DataError(f"{record_path}.hea: fs={header.fs}, sig_len={header.sig_len}; expected both positive")
    # the same reader as `meit prep`: leads by name, units to mV, short NaN gaps repaired
    policy = SignalPolicy(fs=round(header.fs), seconds=header.sig_len / float(header.fs))
    try:
        signal, _ = read_signal(str(record_path), policy)
    except RecordRejected as err:
        raise DataError(f"{record_path}: {err}") from err
    return signal, policy.fs


@torch.no_grad()
def generate_for_signal(model: Any, signal: np.ndarray, fs: int, *, instruction: str | None = None,
                        settings: DecodingSettings | None = None, max_length: int = 128) -> str:
    from meit.training.setup import make_transform

    settings = settings or DecodingSettings()
    fmt = PromptFormat.from_model(model, max_length)
    encoded = encode_prompt(model.tokenizer, fmt, instruction or evaluation_instruction())
    ecg = torch.from_numpy(make_transform(model, fs)(signal).astype(np.float32))
    example = {"id": "input", "report": "", "ecg": ecg, "input_ids": encoded.input_ids,
               "labels": encoded.labels, "ecg_mask": encoded.ecg_mask}
    batch = EcgCollator(model.tokenizer.pad_token_id, padding_side="left")([example])
    model.eval()
    torch.manual_seed(settings.seed)
    return generate_batch(model, batch, settings)[0]
