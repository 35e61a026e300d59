"""From a list of input records to a prepared dataset on disk: sharded, resumable, deterministic.

Records are cut into fixed shards per split from the input order alone; workers write each shard and
its marker themselves, so a run killed at any point resumes to byte-identical output, whatever the
number of workers (``tests/fault_hooks.py`` kills it at exact points from outside this module).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import multiprocessing.pool
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_prep.items import Item, ItemTable, process_item
from meit import __version__
from meit.errors import ConfigError, DataError
from meit.leads import CANONICAL_LEADS
from meit.publish import OWNER_MARKER, atomic_write_text, mark_owned
from meit.records import DROPPED_LEADS, SIGNAL_POLICY_VERSION, SignalPolicy

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import Features

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "validation", "test")
FORMAT_VERSION = 1
WORK_DIR = ".work"
_SHARD_BYTES = 32 * 1024 * 1024


def _watch_parent(parent: int) -> None:
    # A worker whose parent was killed (kill -9) would otherwise wait forever on its task queue.
    # The parent is the main process (fork) or the forkserver, which exits when the main one dies.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()


def _start_pool(workers: int) -> mp.pool.Pool:
    """Worker pool, started before this run creates any thread of its own.

    Linux: ``fork`` (instant; a fresh interpreter re-imports numpy/scipy/pandas for seconds per
    worker). Elsewhere: ``forkserver`` with this module preloaded (fork is unsafe on macOS).
    """
    if sys.platform.startswith("linux"):
        ctx = mp.get_context("fork")
    else:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["data_prep.writer"])
    return ctx.Pool(workers, initializer=_init_worker)


@dataclass(frozen=True)
class Shard:
    split: str
    index: int
    count: int  # shards in this split
    rows: np.ndarray  # positions in the ItemTable

    @property
    def file_name(self) -> str:
        return f"data-{self.index:05d}-of-{self.count:05d}.arrow"

    @property
    def key(self) -> str:
        return f"{self.split}-{self.index:05d}"


def plan_shards(table: ItemTable, shard_size: int) -> list[Shard]:
    """Fixed shards per split from the input order alone, so output never depends on workers."""
    shards: list[Shard] = []
    for split in SPLITS:
        mine = table.indices(split)
        count = max(1, -(-len(mine) // shard_size))
        for k in range(count):
            shards.append(Shard(split, k, count, mine[k * shard_size : (k + 1) * shard_size]))
    return shards


def default_shard_size(samples: int) -> int:
    """About 32 MiB of signal per shard (one worker task), between 16 and 1024 records."""
    return int(min(1024, max(16, _SHARD_BYTES // (len(CANONICAL_LEADS) * samples * 4))))



def _ecg_column(rows: list[dict], samples: int) -> pa.Array:
    """The Array2D column built straight from one contiguous buffer (no per-value Python work)."""
    import pyarrow as pa
    from datasets.features.features import Array2DExtensionType

    leads = len(CANONICAL_LEADS)
    n = len(rows)
    block = np.empty((n, leads, samples), dtype=np.float32)
    for i, row in enumerate(rows):
        block[i] = row["ecg"]
    values = pa.array(block.reshape(-1))
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, n * leads * samples + 1, samples, dtype=np.int32)), values)
    outer = pa.ListArray.from_arrays(pa.array(np.arange(0, n * leads + 1, leads, dtype=np.int32)), inner)
    return pa.ExtensionArray.from_storage(Array2DExtensionType((leads, samples), "float32"), outer)


def _write_shard(path: Path, rows: list[dict], features: Features) -> None:
    """One arrow stream file in the layout ``datasets.save_to_disk`` writes, atomically."""
    import pyarrow as pa

    schema = features.arrow_schema
    samples = features["ecg"].shape[1]
    arrays = []
    for field in schema:
        if field.name == "ecg":
            arrays.append(_ecg_column(rows, samples))
        else:
            arrays.append(pa.array([row.get(field.name) for row in rows], type=field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        if rows:
            writer.write_table(table)
    os.replace(tmp, path)


#: files a preparation writes at the top of OUT
_OUR_FILES = ("manifest.json", "rejected.jsonl", "dataset_dict.json")
#: everything at the top of OUT that marks it as an earlier meit prep output (``*.tmp``: older versions)
_OUR_NAMES = {
    *_OUR_FILES, WORK_DIR, *SPLITS, OWNER_MARKER,
    "manifest.json.tmp", "rejected.jsonl.tmp", "dataset_dict.json.tmp",
}
#: the temporary name ``meit.publish.atomic_file`` writes under (left behind only by a kill mid-write)
_ATOMIC_TMP = re.compile(r"\.(?P<name>.+)\.tmp-\d+")


def _is_ours(name: str) -> bool:
    """True for a top-level entry of OUT that a preparation writes (or left half-written when killed)."""
    tmp = _ATOMIC_TMP.fullmatch(name)
    return name in _OUR_NAMES or (tmp is not None and tmp.group("name") in _OUR_FILES)


def _reset_output(out: Path) -> None:
    if not out.is_dir():
        return
    for target in out.iterdir():
        if not _is_ours(target.name):
            continue
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def _claim_output(out: Path, config: dict, overwrite: bool) -> dict | None:
    """Decide fresh start / resume / already done; returns the finished manifest when done."""
    manifest_path = out / "manifest.json"
    work = out / WORK_DIR
    if out.exists() and not out.is_dir():
        raise ConfigError(f"OUT {out}: exists and is not a directory")
    if overwrite:
        _reset_output(out)
    elif manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("config") == config:
            if work.exists():
                shutil.rmtree(work)
            return manifest
        raise ConfigError(
            f"OUT {out}: already holds a dataset prepared with other settings; "
            "choose another directory or pass --overwrite"
        )
    elif (work / "config.json").exists():
        previous = json.loads((work / "config.json").read_text(encoding="utf-8"))
        if previous != config:
            raise ConfigError(
                f"OUT {out}: holds an interrupted run with other settings "
                f"({WORK_DIR}/config.json differs); rerun with the same settings or pass --overwrite"
            )
    elif out.exists() and not all(_is_ours(p.name) for p in out.iterdir()):
        raise ConfigError(f"OUT {out}: is not empty and is not a meit prep output; choose an empty directory")
    (work / "markers").mkdir(parents=True, exist_ok=True)
    mark_owned(out, "prepared dataset")
    for stale in out.iterdir():  # a file killed mid-write; its complete version is rewritten at the end
        if _ATOMIC_TMP.fullmatch(stale.name) and _is_ours(stale.name):
            stale.unlink()
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)
        for stale in [*(out / split).glob("*.tmp"), *(out / split).glob(".*.tmp-*")]:
            stale.unlink()
    atomic_write_text(work / "config.json", json.dumps(config, indent=2, sort_keys=True))
    return None


def _finalise(
    out: Path, shards: list[Shard], features: Features, manifest: dict, pre_rejects: list[dict]
) -> dict:
    """Write the datasets metadata, rejected.jsonl and manifest.json (last: it marks completion).

    Markers are read one at a time and rejects streamed to disk, so memory stays flat.
    """
    work = out / WORK_DIR
    total = hashlib.sha256()
    counts: dict[str, int] = {}
    by_reason: Counter[str] = Counter()
    repairs: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    spans: dict[str, dict] = {}
    rejects_hash = hashlib.sha256()
    rejected_tmp = out / "rejected.jsonl.tmp"
    info = {"citation": "", "description": f"meit prep {manifest['source']}", "features": features.to_dict(),
            "homepage": "", "license": ""}
    with open(rejected_tmp, "w", encoding="utf-8") as rejected:

        def add_rejects(rows: list[dict]) -> None:
            for r in rows:
                line = json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n"
                rejected.write(line)
                rejects_hash.update(line.encode())
                by_reason[r["reason"]] += 1

        add_rejects(pre_rejects)
        for split in SPLITS:
            mine = [s for s in shards if s.split == split]
            split_hash = hashlib.sha256()
            counts[split] = 0
            for s in mine:
                marker = json.loads((work / "markers" / f"{s.key}.json").read_text())
                split_hash.update(bytes.fromhex(marker["digests"]))
                add_rejects(marker["rejects"])
                counts[split] += marker["rows"]
                repairs.update(marker.get("repairs", {}))
                dropped.update(marker.get("dropped_leads", {}))
                _merge_span_repairs(spans, marker.get("repair_spans", {}))
            total.update(split.encode() + split_hash.digest())
            state = {
                "_data_files": [{"filename": s.file_name} for s in mine],
                "_fingerprint": split_hash.hexdigest()[:16],
                "_format_columns": None,
                "_format_kwargs": {},
                "_format_type": None,
                "_output_all_columns": False,
                "_split": split,
            }
            atomic_write_text(out / split / "state.json", json.dumps(state, indent=2, sort_keys=True))
            atomic_write_text(out / split / "dataset_info.json", json.dumps(info, indent=2))
    total.update(b"rejected" + rejects_hash.digest())
    atomic_write_text(out / "dataset_dict.json", json.dumps({"splits": list(SPLITS)}))
    os.replace(rejected_tmp, out / "rejected.jsonl")
    manifest = {
        **manifest,
        "counts": counts,
        "inputs": sum(len(s.rows) for s in shards) + len(pre_rejects),
        "rejected": sum(by_reason.values()),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "repaired_records_by_kind": dict(sorted(repairs.items())),
        "dropped_leads": dict(sorted(dropped.items())),
        "repair_spans_by_kind": _span_manifest(spans),
        "content_hash": "sha256:" + total.hexdigest(),
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(work)
    return manifest


def run_prepare(
    items: ItemTable,
    out: str | os.PathLike,
    *,
    features: dict,
    policy: SignalPolicy,
    manifest: dict,
    config: dict,
    workers: int = 1,
    shard_size: int | None = None,
    pre_rejects: list[dict] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Process ``items`` into ``OUT`` (see DESIGN.md) and return the manifest.

    Shards are written to their final place atomically, with a marker per finished shard in
    ``OUT/.work``; a rerun after any interruption skips finished shards and ends with the same bytes.
    ``config`` must hold every setting that changes output: a rerun with other settings is refused.
    ``pre_rejects`` are records the source module already refused from its tables alone.
    """
    from datasets import Features

    if workers < 1:
        raise ConfigError(f"workers: expected >= 1, got {workers}")
    out_path = Path(out)
    shard_size = shard_size or default_shard_size(policy.samples)
    if shard_size < 1:
        raise ConfigError(f"shard_size: expected >= 1, got {shard_size}")
    pre_rejects = list(pre_rejects or [])
    dup = items.duplicate_id()
    pre_ids = [r["id"] for r in pre_rejects]
    if dup is None and len(set(pre_ids)) != len(pre_ids):
        dup = next(i for i, c in Counter(pre_ids).items() if c > 1)
    if dup is None and pre_ids and items.frame["id"].isin(pre_ids).any():
        dup = str(items.frame["id"][items.frame["id"].isin(pre_ids)].iloc[0])
    if dup is not None:
        raise DataError(f"record id {dup!r} appears more than once in the input tables")
    inputs_hash = hashlib.sha256(
        (items.fingerprint() + json.dumps(pre_rejects, sort_keys=True)).encode()
    ).hexdigest()
    config = {**config, "shard_size": shard_size, "inputs_hash": inputs_hash, "format_version": FORMAT_VERSION,
              "signal_policy_version": SIGNAL_POLICY_VERSION}
    done_manifest = _claim_output(out_path, config, overwrite)
    if done_manifest is not None:
        log.info("%s already holds this prepared dataset; nothing to do", out_path)
        return done_manifest

    markers = out_path / WORK_DIR / "markers"
    shards = plan_shards(items, shard_size)
    todo = [s for s in shards if not (markers / f"{s.key}.json").exists()]
    pool = _start_pool(workers) if workers > 1 and todo else None
    try:
        _process_shards(todo, items, out_path, Features(features), policy, pool, workers, progress,
                        total=len(items), source=manifest["source"])
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    manifest = {
        **manifest,
        "format_version": FORMAT_VERSION,
        "meit_version": __version__,
        "fs": policy.fs,
        "seconds": policy.seconds,
        "samples": policy.samples,
        "leads": list(CANONICAL_LEADS),
        "units": "mV",
        "config": config,
    }
    return _finalise(out_path, shards, Features(features), manifest, pre_rejects)


#: repair kinds that name a lead and a span of the record (``kind:lead:t0-t1 s[:how]``)
SPAN_REPAIRS = ("rebuilt", "blanked")


def add_span_repairs(totals: dict[str, dict], entries: list[str]) -> None:
    """Count the rebuilt / blanked spans of one record into ``totals`` (per kind: spans, ms, per lead).

    Milliseconds are integers, so the sums do not depend on how records are cut into shards.
    """
    for entry in entries:
        kind, _, rest = entry.partition(":")
        if kind not in SPAN_REPAIRS:
            continue
        lead, span = rest.split(":", 2)[:2]
        start, end = (float(v) for v in span.removesuffix(" s").split("-"))
        into = totals.setdefault(kind, {"spans": 0, "ms": 0, "by_lead": {}})
        into["spans"] += 1
        into["ms"] += round(end * 1000) - round(start * 1000)
        into["by_lead"][lead] = into["by_lead"].get(lead, 0) + 1


def _merge_span_repairs(totals: dict[str, dict], shard: dict[str, dict]) -> None:
    for kind, counts in shard.items():
        into = totals.setdefault(kind, {"spans": 0, "ms": 0, "by_lead": {}})
        into["spans"] += counts["spans"]
        into["ms"] += counts["ms"]
        for lead, n in counts["by_lead"].items():
            into["by_lead"][lead] = into["by_lead"].get(lead, 0) + n


def _span_manifest(totals: dict[str, dict]) -> dict[str, dict]:
    """Per kind: number of spans, their total seconds and spans per lead (canonical lead order)."""
    return {
        kind: {"spans": c["spans"], "seconds": c["ms"] / 1000,
               "by_lead": {lead: c["by_lead"][lead] for lead in CANONICAL_LEADS if lead in c["by_lead"]}}
        for kind, c in sorted(totals.items())
    }


def build_shard(shard: Shard, items: list[Item], out_dir: str, feats: Features, policy: SignalPolicy) -> int:
    """Worker entry point: process one shard's records and make the shard durable.

    The worker writes the arrow file and then its marker itself, so signals never cross a pipe
    and the parent stays idle; returns the number of input records handled.
    """
    rows: list[dict] = []
    rejects: list[dict] = []
    digests: list[bytes] = []
    repairs: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    spans: dict[str, dict] = {}
    for item in items:
        outcome = process_item(item, policy)
        if outcome.row is not None:
            rows.append(outcome.row)
            digests.append(outcome.digest)
            repairs.update({entry.split(":", 1)[0] for entry in outcome.row["repairs"]})
            add_span_repairs(spans, outcome.row["repairs"])
            for entry in outcome.row["repairs"]:
                if entry.startswith(f"{DROPPED_LEADS}:"):
                    dropped.update(entry.split(":", 1)[1].split(","))
        else:
            rejects.append(outcome.reject)
    out_path = Path(out_dir)
    _write_shard(out_path / shard.split / shard.file_name, rows, feats)
    marker = {"rows": len(rows), "digests": b"".join(digests).hex(), "rejects": rejects,
              "repairs": dict(repairs), "dropped_leads": dict(dropped), "repair_spans": spans}
    atomic_write_text(out_path / WORK_DIR / "markers" / f"{shard.key}.json", json.dumps(marker, sort_keys=True))
    return len(items)


def _process_shards(
    todo: list[Shard], items: ItemTable, out_path: Path, feats: Features, policy: SignalPolicy,
    pool: mp.pool.Pool | None, workers: int, progress: bool, *, total: int, source: str,
) -> None:
    """Run the unfinished shards, a bounded number in flight; finished shards survive any crash."""
    from tqdm import tqdm

    skipped = total - sum(len(s.rows) for s in todo)
    if skipped:
        log.info("resuming: %d of %d records already prepared", skipped, total)
    bar = tqdm(total=total, initial=skipped, unit="rec", desc=f"prep {source}",
               disable=not progress, dynamic_ncols=True)
    with bar:
        if pool is None:
            for shard in todo:
                bar.update(build_shard(shard, items.items(shard.rows), str(out_path), feats, policy))
            return
        pending: deque = deque()
        queue = iter(todo)
        while True:
            while len(pending) < workers + 1:
                shard = next(queue, None)
                if shard is None:
                    break
                args = (shard, items.items(shard.rows), str(out_path), feats, policy)
                pending.append(pool.apply_async(build_shard, args))
            if not pending:
                break
            bar.update(pending.popleft().get())
