"""``meit render DATA --split S --out OUT``: every record of a prepared split → images + sidecars + index.

The folder is filled in a staging sibling and renamed into place when complete (:mod:`meit.publish`),
so ``OUT`` is either absent, the previous complete output, or the new complete output. An existing
output with the same source and settings is left as it is (the run does nothing); one with other
settings is replaced only with ``overwrite=True``; a folder meit did not write is never replaced.
A record that cannot be rendered is skipped and listed in ``skipped.jsonl`` with its reason.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from meit import __version__
from meit.data.dataset import load_split
from meit.errors import ConfigError, DataError, MeitError
from meit.publish import check_replaceable, staged_folder
from meit.render.store import FORMAT, INDEX, RECORDS, SKIPPED, VERSION, png_bytes, read_index, record_name
from meit.render_jobs.one import RenderSettings, render_one

KIND = "rendered ECG images"
#: exit codes of a finished run, as `meit prep` uses them: nothing rendered / some unexpected per-record error
EXIT_NOTHING_RENDERED = 7
EXIT_UNEXPECTED_ERRORS = 8
BATCH = 16


def _source(data: Path, split: str, limit: int | None) -> dict[str, Any]:
    manifest = data / "manifest.json"
    content_hash = None
    if manifest.is_file():
        try:
            content_hash = json.loads(manifest.read_text(encoding="utf-8")).get("content_hash")
        except (OSError, ValueError):
            content_hash = None
    return {"data": str(data.resolve()), "split": split, "limit": limit, "content_hash": content_hash}


def _existing(out: Path, source: dict[str, Any], settings: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """The index of an identical finished output (nothing to do), None to render; refuses a different one."""
    if not (out / INDEX).is_file():
        return None
    try:
        index = read_index(out)
    except DataError:
        index = None
    if index is not None and index.get("source") == source and index.get("settings") == settings:
        return index
    if not overwrite:
        what = "an unreadable index" if index is None else "another source or other settings"
        raise ConfigError(f"{out}: holds a `meit render` output with {what}; pass --overwrite to replace it "
                          "or choose another --out")
    return None


def _rows(split: Any, batch: int = BATCH) -> Any:
    """(id, ecg, fs) per row, read a batch at a time (one arrow read per batch, never the whole split)."""
    table = split.select_columns(["id", "ecg", "fs"]).with_format("numpy", columns=["ecg"], output_all_columns=True)
    for start in range(0, len(table), batch):
        columns = table[start:start + batch]
        yield from zip(columns["id"], columns["ecg"], columns["fs"], strict=True)


def render_split(data: str | Path, split: str, out: str | Path, settings: RenderSettings, *,
                 limit: int | None = None, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Render split ``split`` of the prepared dataset ``data`` into ``out``; returns the index.

    The index's ``counts`` say how many rows were read, rendered and skipped (per reason); the returned
    dict has ``"unchanged": True`` when an identical finished output was already there.
    """
    from tqdm import tqdm

    data, out = Path(data).expanduser(), Path(out).expanduser()
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: expected a positive number of records")
    check_replaceable(out, KIND, also_owned_if=(INDEX,))
    source, recorded = _source(data, split, limit), settings.to_dict()
    done = _existing(out, source, recorded, overwrite)
    if done is not None:
        return {**done, "unchanged": True}
    rows = load_split(data, split, limit)
    started = time.perf_counter()
    entries: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    taken: set[str] = set()
    with staged_folder(out, KIND, also_owned_if=(INDEX,)) as tmp:
        (tmp / RECORDS).mkdir()
        bar = tqdm(total=len(rows), unit="rec", desc=f"render {settings.mode}", disable=not progress,
                   dynamic_ncols=True)
        for record_id, ecg, fs in _rows(rows):
            record_id = str(record_id)
            try:
                rendered = render_one(np.asarray(ecg), float(fs), settings, record_id)
            except MeitError as err:
                skipped.append({"id": record_id, "reason": "bad_signal", "detail": str(err)})
            except Exception as err:  # a bug or an unforeseen input: accounted for, the run goes on
                detail = f"{type(err).__name__}: {err}"
                skipped.append({"id": record_id, "reason": "unexpected_error", "detail": detail})
            else:
                entries.append(_write(tmp, record_name(record_id, taken), rendered))
            bar.update(1)
        bar.close()
        reasons = Counter(s["reason"] for s in skipped)
        index = {
            "format": FORMAT, "version": VERSION, "meit_version": __version__, "source": source,
            "settings": recorded,
            "counts": {"rows": len(rows), "rendered": len(entries), "skipped": len(skipped),
                       "skipped_by_reason": dict(sorted(reasons.items()))},
            "seconds": round(time.perf_counter() - started, 3),
            "records": entries,
        }
        (tmp / SKIPPED).write_text("".join(json.dumps(s) + "\n" for s in skipped), encoding="utf-8")
        (tmp / INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return index


def _write(folder: Path, name: str, rendered: Any) -> dict[str, Any]:
    """The record's files inside the staging folder (published together with it); its index entry."""
    entry = {"id": rendered.sidecar["id"], "image": f"{RECORDS}/{name}.png", "sidecar": f"{RECORDS}/{name}.json"}
    (folder / entry["image"]).write_bytes(png_bytes(rendered.image))
    if rendered.array is not None:
        entry["array"] = f"{RECORDS}/{name}.npy"
        np.save(folder / entry["array"], rendered.array, allow_pickle=False)
    (folder / entry["sidecar"]).write_text(json.dumps(rendered.sidecar, indent=1) + "\n", encoding="utf-8")
    return entry
