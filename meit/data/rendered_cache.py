"""A ``meit render`` folder as the image source of a dataset split (``data.image_cache``).

Drawing a page on the fly costs ~10 ms; a cache saves that and lets users train on the exact pages they looked
at. It is used only when it holds what the encoder's contract would draw: the same layout, dpi, scales and page
length (or encoding and size), clean pages (training augments on the fly, seeded per record and epoch, and
evaluation never augments), drawn from the stored signal at the contract's rate with no filtering. Anything else
is a :class:`~meit.errors.DataError` naming the setting, never a silent mix of two renderings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from meit.data.image_spec import PAPER_MODES
from meit.errors import DataError

if TYPE_CHECKING:
    from meit.data.contract import EncoderContract


@dataclass
class RenderedCache:
    """The records of one ``meit render`` output, by id; images are read when asked for."""

    root: Path
    index: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path, split: str | None = None, data_path: str | Path | None = None) -> RenderedCache:
        """``path`` is a ``meit render`` output, or a folder of them named by split (``path/<split>``).

        The output must be of ``split`` (when given) and, when both carry one, of the same content hash as the
        prepared dataset at ``data_path``.
        """
        from meit.render.store import INDEX, read_index

        root = Path(path).expanduser()
        if not (root / INDEX).is_file() and split is not None and (root / split / INDEX).is_file():
            root = root / split
        if not (root / INDEX).is_file():
            where = f"{root / INDEX}" + (f" or {root / str(split) / INDEX}" if split else "")
            raise DataError(f"data.image_cache={path}: no {where}; render the split first "
                            f"(`meit render DATA --split {split or 'SPLIT'} --out {path}`)")
        index = read_index(root)
        source = index.get("source") or {}
        if split is not None and source.get("split") not in (None, split):
            raise DataError(f"data.image_cache={root} holds split '{source.get('split')}', not '{split}'; point it "
                            f"at a folder with one rendered split per subfolder ({root.parent}/<split>)")
        theirs = source.get("content_hash")
        mine = _content_hash(data_path) if data_path is not None else None
        if theirs and mine and theirs != mine:
            raise DataError(f"data.image_cache={root} was rendered from another dataset (content hash {theirs}) than "
                            f"{data_path} ({mine}); render it again")
        entries = {str(e["id"]): e for e in index["records"] if isinstance(e, dict) and "id" in e}
        return cls(root=root, index=index, entries=entries)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.index.get("settings") or {})

    def check_contract(self, contract: EncoderContract, fs_in: int | None = None) -> None:
        """Raise :class:`DataError` unless the cache holds exactly what ``contract`` draws from data at ``fs_in``."""
        s = self.settings
        wrong: list[str] = []

        def expect(key: str, value: Any) -> None:
            if s.get(key) != value:
                wrong.append(f"{key} {s.get(key)!r} (the contract needs {value!r})")

        if contract.image_mode in PAPER_MODES:
            expect("mode", "paper")
            expect("layout", contract.image_mode.removeprefix("paper-"))
            expect("dpi", contract.image_dpi)
            for key, value in (("speed_mm_s", 25.0), ("gain_mm_mv", 10.0), ("grid", True), ("calibration", True),
                               ("labels", True)):
                expect(key, value)
            if any(float(v) > 0 for v in (s.get("augmentation") or {}).values()):
                wrong.append("augmentation: the pages are augmented (render without --augment: training augments "
                             "on the fly per record and epoch, evaluation never)")
        else:
            assert contract.image_size is not None
            expect("mode", contract.image_mode)
            expect("size", contract.image_size[0])
        if s.get("seconds") is None or float(s["seconds"]) != float(contract.seconds):
            wrong.append(f"seconds {s.get('seconds')!r} (the contract needs {contract.seconds:g})")
        if contract.filtered:
            wrong.append(f"the contract filters the signal ({contract.describe_filters()}) but the cache was drawn "
                         "from the stored signal")
        if fs_in is not None and fs_in != contract.fs:
            wrong.append(f"the cache was drawn from the stored {fs_in} Hz signal but the contract reads it at "
                         f"{contract.fs} Hz")
        if wrong:
            raise DataError(f"data.image_cache={self.root} does not match the encoder's image contract "
                            f"({contract.describe()}): {'; '.join(wrong)}. Render it with matching settings or "
                            "leave data.image_cache unset (images are then drawn on the fly)")

    def image(self, record_id: str) -> np.ndarray:
        """The clean page ``(H, W, 3)`` uint8 (paper) or the encoding ``(12, S, S)`` float32 of ``record_id``."""
        from meit.render.store import load_record

        entry = self.entries.get(str(record_id))
        if entry is None:
            raise DataError(f"record '{record_id}' is not in data.image_cache={self.root} (rendered "
                            f"{len(self.entries)} records; see its skipped.jsonl, or render without --limit)")
        try:
            array, _ = load_record(self.root, entry)
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"data.image_cache={self.root}: record '{record_id}' cannot be read ({err})") from err
        return np.asarray(array)


def _content_hash(data_path: str | Path) -> str | None:
    """The prepared dataset's ``manifest.json`` content hash, when it has one."""
    manifest = Path(data_path) / "manifest.json"
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("content_hash")
    except (OSError, ValueError, AttributeError):
        return None
