"""The retrieval index folder on disk: its file names, how it is written, and how it is read back.

* ``embeddings.safetensors``: ``ecg`` ``[N, D]`` (one per row) and ``report`` ``[U, D]`` (one per
  *distinct* report text: machine statements repeat word for word, and retrieving the same sentence
  ten times would tell the user nothing);
* ``records.jsonl``: per row ``id``, ``report``, ``report_index`` (its row in ``report``) and
  ``findings`` (the clinical extractor's set, used to judge ECG→ECG hits);
* ``index.json``: where the model and the data came from, counts, the encoder contract and the
  sha256 of the model's weight files, so queries embedded by another model are refused instead of
  silently returning nonsense.

Nothing is unpickled: embeddings are safetensors, the rest JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from meit.errors import DataError, ModelError
from meit.findings import extract_findings
from meit.hashing import file_sha256

FORMAT = "meit-retrieval-index"
VERSION = 1
EMBEDDINGS = "embeddings.safetensors"
RECORDS = "records.jsonl"
META = "index.json"
# weight files whose bytes decide the embeddings; the encoder's is required, the heads' checked when present
FINGERPRINTED = ("encoder.safetensors", "heads.safetensors")
#: the fields index.json must hold
REQUIRED_META = ("model_dir", "data_path", "split", "rows", "embed_dim", "contract", "model_sha256")


@dataclass(frozen=True)
class IndexFiles:
    """The contents of an index folder, checked for consistency by :func:`read_index_files`."""

    meta: dict[str, Any]
    ecg: torch.Tensor
    report: torch.Tensor
    records: list[dict[str, Any]]


def model_fingerprint(model_dir: str | Path) -> dict[str, str]:
    """sha256 of the model folder's weight files (``encoder.safetensors`` must exist)."""
    root = Path(model_dir).expanduser()
    if not (root / FINGERPRINTED[0]).is_file():
        raise ModelError(f"{root / FINGERPRINTED[0]} not found: the model folder should be the final/ folder "
                         "of `meit pretrain`")
    return {name: file_sha256(root / name) for name in FINGERPRINTED if (root / name).is_file()}


def write_index_files(folder: Path, ecg: torch.Tensor, text: torch.Tensor, ids: list[str], reports: list[str],
                      which: list[int], meta: dict[str, Any]) -> None:
    """Fill ``folder`` (a staged folder: it is published by the caller) with the three index files."""
    from safetensors.torch import save_file

    save_file({"ecg": ecg.float().contiguous(), "report": text.float().contiguous()}, str(folder / EMBEDDINGS),
              metadata={"format": FORMAT})
    with open(folder / RECORDS, "w") as handle:
        for row_id, report, position in zip(ids, reports, which, strict=True):
            record = {"id": row_id, "report": report, "report_index": position,
                      "findings": sorted(extract_findings(report))}
            handle.write(json.dumps(record) + "\n")
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n")


def read_index_files(directory: str | Path) -> IndexFiles:
    """Read an index folder; every missing or inconsistent file is named in the error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = Path(directory).expanduser()
    if not root.is_dir():
        raise DataError(f"retrieval index not found: {root} (build one with `meit retrieve build`)")
    meta_file, emb_file, rec_file = root / META, root / EMBEDDINGS, root / RECORDS
    for file in (meta_file, emb_file, rec_file):
        if not file.is_file():
            raise DataError(f"{file} is missing: {root} is not a complete retrieval index (rebuild it)")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{meta_file} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DataError(f"{meta_file}: format is {got!r}, expected {FORMAT!r}")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise DataError(f"{meta_file} lacks {missing}")
    try:
        tensors = load_file(str(emb_file))
    except (SafetensorError, OSError, ValueError) as err:
        raise DataError(f"{emb_file} is not a readable safetensors file: {err}") from err
    if set(tensors) != {"ecg", "report"}:
        raise DataError(f"{emb_file} holds {sorted(tensors)}, expected ['ecg', 'report']")
    ecg, report = tensors["ecg"].float(), tensors["report"].float()
    dim = int(meta["embed_dim"])
    for name, tensor in (("ecg", ecg), ("report", report)):
        if tensor.ndim != 2 or tensor.shape[1] != dim:
            raise DataError(f"{emb_file}: '{name}' has shape {list(tensor.shape)}, expected [*, {dim}]")
    records = []
    try:
        with open(rec_file) as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or not {"id", "report", "report_index"} <= set(row):
                    raise DataError(f"{rec_file} line {number}: expected id, report, report_index; "
                                    f"got {line[:80]!r}")
                records.append(row)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{rec_file} line {number}: not valid JSON ({err})") from err
    if not (len(records) == ecg.shape[0] == int(meta["rows"])):
        raise DataError(f"{root}: {rec_file.name} has {len(records)} rows, {emb_file.name} has {ecg.shape[0]} "
                        f"ECG embeddings and {meta_file.name} says {meta['rows']}; rebuild the index")
    bad = [r["id"] for r in records if not 0 <= int(r["report_index"]) < report.shape[0]]
    if bad:
        raise DataError(f"{rec_file}: report_index out of range [0, {report.shape[0]}) for id(s) {bad[:5]}")
    return IndexFiles(meta, ecg, report, records)
