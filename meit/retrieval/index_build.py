"""Build a retrieval index: embed every row of a prepared split once and publish the folder.

Only embeddings are held in memory (rows are embedded batch by batch); the folder is staged and
published atomically (:mod:`meit.publish`), so an interrupted build never leaves a half index that loads.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from meit import __version__
from meit.errors import DataError
from meit.publish import check_replaceable, staged_folder
from meit.records import read_ecg_file
from meit.retrieval.evaluate import embed_dataset
from meit.retrieval.index_files import FORMAT, META, VERSION, model_fingerprint, write_index_files
from meit.retrieval.relevance import unique_texts


def embed_signal(model: Any, signal: Any, fs: int) -> torch.Tensor:
    """The embedding ``[D]`` of one raw ECG (12 × T, mV, canonical lead order) sampled at ``fs``."""
    transform = model.contract.load_transform(fs)
    ecg = torch.from_numpy(np.ascontiguousarray(transform(np.asarray(signal, dtype=np.float32)), dtype=np.float32))
    return model.embed_ecgs(ecg[None], batch_size=1)[0]


def embed_record(model: Any, path: str | Path, fs: int | None = None) -> torch.Tensor:
    """Read a wfdb record (or ``.npy`` with ``fs``) with prep's own reader and embed it."""
    signal, file_fs = read_ecg_file(path, fs)
    return embed_signal(model, signal, file_fs)


def _embed_texts(model: Any, texts: list[str], batch_size: int, progress: bool) -> torch.Tensor:
    parts = []
    starts = range(0, len(texts), batch_size)
    for start in tqdm(starts, disable=not progress, desc="embed reports", unit="batch"):
        parts.append(model.embed_texts(texts[start:start + batch_size], batch_size=batch_size))
    return torch.cat(parts) if parts else torch.zeros(0, model.embed_dim)


def build_index(model: Any, dataset: Any, out_dir: str | Path, *, model_dir: str | Path, data_path: str | Path,
                split: str, batch_size: int = 64, progress: bool = True) -> Path:
    """Embed every row of ``dataset`` (an EcgTextDataset of ``data_path``/``split``) and write the index folder.

    Written to a temporary sibling folder first and renamed at the end, so an interrupted build never
    leaves a half index that loads.
    """
    check_replaceable(out_dir, "retrieval index", also_owned_if=(META,))  # before the embedding work
    fingerprint = model_fingerprint(model_dir)
    ids, reports = dataset.ids(), dataset.reports()
    duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)
    if duplicates:
        raise DataError(f"split '{split}' of {data_path} repeats row id(s) {duplicates[:5]}; "
                        "an index needs unique ids to exclude a query from its own results")
    ecg = embed_dataset(model, dataset, batch_size=batch_size, progress=progress)
    distinct, which = unique_texts(reports)
    text = _embed_texts(model, distinct, batch_size, progress)

    with staged_folder(out_dir, "retrieval index", also_owned_if=(META,)) as tmp:
        write_index_files(tmp, ecg, text, ids, reports, which, meta={
            "format": FORMAT,
            "version": VERSION,
            "model_dir": str(Path(model_dir).expanduser().resolve()),
            "data_path": str(Path(data_path).expanduser().resolve()),
            "split": split,
            "rows": len(ids),
            "distinct_reports": len(distinct),
            "embed_dim": int(model.embed_dim),
            "contract": model.contract.to_dict(),
            "model_sha256": fingerprint,
            "meit_version": __version__,
        })
    return Path(out_dir)
