"""The folder ``meit render`` writes, and reading it back (a rendered cache for the data pipeline).

Layout of ``OUT`` (docs/images.md):

- ``index.json`` — format and version, the source (prepared dataset, split, its content hash), every
  setting, counts (rendered, skipped per reason) and one entry per rendered record:
  ``{"id", "image", "sidecar"[, "array"]}`` with paths relative to ``OUT``;
- ``records/<name>.png`` + ``records/<name>.json`` per record (``<name>.npy`` too for the encodings:
  the float32 (12, size, size) array; the PNG is then a 3 × 4 preview of its channels);
- ``skipped.jsonl`` — one ``{"id", "reason", "detail"}`` per record that was not rendered.

Record names are the ids with anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``
(a clash gets ``~N`` appended); the index maps ids to files, so readers never rebuild names.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from meit.errors import DataError

FORMAT = "meit-rendered-ecgs"
VERSION = 1
INDEX = "index.json"
SKIPPED = "skipped.jsonl"
RECORDS = "records"
PNG_LEVEL = 3
REQUIRED_INDEX_KEYS = ("format", "version", "settings", "counts", "records")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def record_seed(seed: int, record_id: str) -> int:
    """The augmentation seed of one record: fixed by (seed, id), not by its position or ``--limit``."""
    digest = hashlib.sha256(f"{int(seed)}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def record_name(record_id: str, taken: set[str]) -> str:
    """A file-system-safe, unique base name for ``record_id`` (added to ``taken``)."""
    base = _UNSAFE.sub("_", str(record_id)).lstrip(".") or "record"
    name, n = base, 1
    while name in taken:
        name, n = f"{base}~{n}", n + 1
    taken.add(name)
    return name


def png_bytes(image: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 image as PNG bytes (lossless). zlib level 3: a 3×4 page at 100 DPI encodes in
    ~32 ms to ~290 kB, against ~50 ms and ~260 kB at Pillow's default level 6."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def preview(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """A (12, S, S) encoding as one grey 3 × 4 mosaic (H, W, 3) uint8, for looking at, not for training."""
    channels, size = array.shape[0], array.shape[1]
    columns = 4
    rows = -(-channels // columns)
    grey = np.zeros((rows * size, columns * size), dtype=np.uint8)
    scaled = np.clip((array - low) / (high - low), 0.0, 1.0) * 255.0
    for k in range(channels):
        r, c = divmod(k, columns)
        grey[r * size:(r + 1) * size, c * size:(c + 1) * size] = np.rint(scaled[k]).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def read_index(folder: str | Path) -> dict[str, Any]:
    """``OUT/index.json`` of a finished ``meit render`` output, checked; a DataError says what is wrong."""
    root = Path(folder)
    path = root / INDEX
    if not path.is_file():
        raise DataError(f"{root}: no {INDEX}; not a finished `meit render` output")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable ({err})") from err
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        got = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise DataError(f"{path}: format {got!r}; expected {FORMAT!r}")
    if index.get("version") != VERSION:
        raise DataError(f"{path}: version {index.get('version')!r}; this meit reads version {VERSION}")
    missing = [k for k in REQUIRED_INDEX_KEYS if k not in index]
    if missing:
        raise DataError(f"{path}: lacks {missing}")
    return index


def load_record(folder: str | Path, entry: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """One indexed record: (the PNG as (H, W, 3) uint8 — or the encoding's float32 array — and its sidecar)."""
    from PIL import Image

    root = Path(folder)
    sidecar = json.loads((root / entry["sidecar"]).read_text(encoding="utf-8"))
    if "array" in entry:
        return np.load(root / entry["array"], allow_pickle=False), sidecar
    with Image.open(root / entry["image"]) as image:
        return np.asarray(image.convert("RGB")), sidecar
