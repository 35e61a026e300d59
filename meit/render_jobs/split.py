"""``meit render DATA --split S --out OUT``: every record of a prepared split → images + sidecars + index.

The folder is filled in a staging sibling, ``.OUT.partial``, and renamed into place when complete
(:mod:`meit.publish`), so ``OUT`` is either absent, the previous complete output, or the new complete output.
The staging folder keeps a journal of the rows it has done: a run that is killed leaves it, and the next run with
the same source and settings goes on from there (a staging folder of other settings is started afresh). An
existing output with the same source and settings is left as it is (the run does nothing); one with other
settings is replaced only with ``overwrite=True``; a folder meit did not write is never replaced.
A record that cannot be rendered is skipped and listed in ``skipped.jsonl`` with its reason.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from meit import __version__
from meit.data.dataset import load_split
from meit.errors import ConfigError, DataError, MeitError
from meit.publish import check_replaceable, publish_folder
from meit.render.store import FORMAT, INDEX, RECORDS, SKIPPED, VERSION, png_bytes, read_index, record_name
from meit.render_jobs.one import RenderSettings, render_one

KIND = "rendered ECG images"
#: exit codes of a finished run, as `meit prep` uses them: nothing rendered / some unexpected per-record error
EXIT_NOTHING_RENDERED = 7
EXIT_UNEXPECTED_ERRORS = 8
BATCH = 16
#: in the staging folder, removed before it is published: what run it belongs to, and the rows it has done
PARTIAL = "partial.json"
JOURNAL = "journal.jsonl"
LOCK = ".lock"


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


@dataclass
class _Progress:
    """What the staging folder already holds: index entries and skips in row order, the rows done, the names used."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    rows_done: set[int] = field(default_factory=set)
    taken: set[str] = field(default_factory=set)


def staging_folder(out: Path) -> Path:
    """Where ``out`` is filled before it is published (a hidden sibling, so the rename is atomic)."""
    return out.parent / f".{out.name}.partial"


def _read_journal(journal: Path) -> _Progress:
    done = _Progress()
    if not journal.is_file():
        return done
    lines = journal.read_text(encoding="utf-8").splitlines(keepends=True)
    for number, line in enumerate(lines):
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        if item is None or not line.endswith("\n"):
            # the line a killed run was writing: cut it off (the next lines are appended after it), redo its row
            journal.write_text("".join(lines[:number]), encoding="utf-8")
            break
        done.rows_done.add(int(item["row"]))
        if "entry" in item:
            done.entries.append(item["entry"])
            done.taken.add(Path(item["entry"]["image"]).stem)
        else:
            done.skipped.append(item["skipped"])
    return done


@contextlib.contextmanager
def _staging(out: Path, run: dict[str, Any]) -> Iterator[tuple[Path, _Progress]]:
    """The staging folder of this run, locked against a second writer: resumed when it belongs to the same
    source and settings, else emptied. Yields it and what it already holds."""
    tmp = staging_folder(out)
    marker = tmp / PARTIAL
    if tmp.exists() and not marker.is_file():
        raise ConfigError(f"{tmp}: exists but is not a `meit render` staging folder (no {PARTIAL}); move it away")
    tmp.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(tmp / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(f"{out}: another `meit render` is writing it (its staging folder {tmp} is locked)") from None
    try:
        try:
            previous = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None
        except ValueError:
            previous = None
        if previous != run:
            for child in tmp.iterdir():
                if child.name != LOCK:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            (tmp / RECORDS).mkdir()
            marker.write_text(json.dumps(run) + "\n", encoding="utf-8")
        yield tmp, _read_journal(tmp / JOURNAL)
    finally:
        lock.release()


def render_split(data: str | Path, split: str, out: str | Path, settings: RenderSettings, *,
                 limit: int | None = None, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Render split ``split`` of the prepared dataset ``data`` into ``out``; returns the index.

    The index's ``counts`` say how many rows were read, rendered and skipped (per reason), and ``resumed`` how
    many rows an interrupted earlier run had done; the returned dict has ``"unchanged": True`` when an identical
    finished output was already there.
    """
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
    run = {"format": FORMAT, "version": VERSION, "source": source, "settings": recorded, "rows": len(rows)}
    with _staging(out, run) as (tmp, state):
        resumed = len(state.rows_done)
        with (tmp / JOURNAL).open("a", encoding="utf-8") as journal:
            _render_rows(rows, settings, tmp, state, journal, progress)
        reasons = Counter(s["reason"] for s in state.skipped)
        index = {
            "format": FORMAT, "version": VERSION, "meit_version": __version__, "source": source,
            "settings": recorded,
            "counts": {"rows": len(rows), "rendered": len(state.entries), "skipped": len(state.skipped),
                       "skipped_by_reason": dict(sorted(reasons.items())), "resumed": resumed},
            "seconds": round(time.perf_counter() - started, 3),
            "records": state.entries,
        }
        (tmp / SKIPPED).write_text("".join(json.dumps(s) + "\n" for s in state.skipped), encoding="utf-8")
        (tmp / INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        for name in (JOURNAL, PARTIAL, LOCK):  # the lock holds while its file is gone, until the rename
            (tmp / name).unlink()
        publish_folder(tmp, out, KIND, also_owned_if=(INDEX,))
    return index


def _render_rows(rows: Any, settings: RenderSettings, tmp: Path, state: _Progress, journal: Any,
                 progress: bool) -> None:
    """Render every row the staging folder lacks, journalling each one after its files are written."""
    from tqdm import tqdm

    bar = tqdm(total=len(rows), initial=len(state.rows_done), unit="rec", desc=f"render {settings.mode}",
               disable=not progress, dynamic_ncols=True)
    for row, (record_id, ecg, fs) in enumerate(_rows(rows)):
        if row in state.rows_done:
            continue
        record_id = str(record_id)
        item: dict[str, Any] = {"row": row}
        try:
            rendered = render_one(np.asarray(ecg), float(fs), settings, record_id)
        except MeitError as err:
            item["skipped"] = {"id": record_id, "reason": "bad_signal", "detail": str(err)}
        except Exception as err:  # a bug or an unforeseen input: accounted for, the run goes on
            detail = f"{type(err).__name__}: {err}"
            item["skipped"] = {"id": record_id, "reason": "unexpected_error", "detail": detail}
        else:
            item["entry"] = _write(tmp, record_name(record_id, state.taken), rendered)
        # the row's files are written before its journal line: a killed run redoes at most this row
        journal.write(json.dumps(item) + "\n")
        journal.flush()
        if "entry" in item:
            state.entries.append(item["entry"])
        else:
            state.skipped.append(item["skipped"])
        bar.update(1)
    bar.close()


def _write(folder: Path, name: str, rendered: Any) -> dict[str, Any]:
    """The record's files inside the staging folder (published together with it); its index entry."""
    entry = {"id": rendered.sidecar["id"], "image": f"{RECORDS}/{name}.png", "sidecar": f"{RECORDS}/{name}.json"}
    (folder / entry["image"]).write_bytes(png_bytes(rendered.image))
    if rendered.array is not None:
        entry["array"] = f"{RECORDS}/{name}.npy"
        np.save(folder / entry["array"], rendered.array, allow_pickle=False)
    (folder / entry["sidecar"]).write_text(json.dumps(rendered.sidecar, indent=1) + "\n", encoding="utf-8")
    return entry
