"""Publish files and folders atomically, and never over something meit did not write.

Every output meit writes (prepared datasets, checkpoints, artifacts, indexes, caches, result files)
goes through here, so all of them follow one rule: a reader sees either the old complete output or
the new complete output, never half of one; and an existing folder is only replaced when it carries
meit's ownership marker (or a file that proves it is an earlier meit output of the same kind).
A user who points ``--out`` at their home folder gets an error, not an empty home folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from meit.errors import ConfigError

OWNER_MARKER = ".meit-output.json"


class OutputError(ConfigError):
    """An output path cannot be written: it is a file, or a folder meit did not create."""


def _fsync_tree(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())


def is_owned(folder: Path, also_owned_if: Iterable[str] = ()) -> bool:
    """True when ``folder`` is meit's to replace: it holds the marker or one of ``also_owned_if``."""
    return any((folder / name).exists() for name in (OWNER_MARKER, *also_owned_if))


def check_replaceable(final: str | Path, kind: str, also_owned_if: Iterable[str] = ()) -> Path:
    """Fail fast (before any work) when ``final`` exists and is not an output meit may replace."""
    final = Path(final).expanduser()
    if final.exists() and not final.is_dir():
        raise OutputError(f"{final}: exists and is a file; the {kind} needs a new or empty folder")
    if final.is_dir() and any(final.iterdir()) and not is_owned(final, also_owned_if):
        raise OutputError(f"{final}: is not empty and was not written by meit (no {OWNER_MARKER}); "
                          f"refusing to replace it with the new {kind}: choose a new or empty folder")
    return final


def mark_owned(folder: Path, kind: str) -> None:
    """Write the ownership marker into a folder meit writes in place (e.g. a resumable preparation)."""
    from meit import __version__

    (folder / OWNER_MARKER).write_text(json.dumps({"kind": kind, "meit": __version__}) + "\n")


def publish_folder(filled: Path, final: str | Path, kind: str, *, also_owned_if: Iterable[str] = (),
                   fsync: bool = True) -> Path:
    """Mark the complete folder ``filled`` as meit's and rename it to ``final``, replacing an owned one.

    ``filled`` must be a sibling of ``final`` (same file system, so the rename is atomic). Use it when
    the temporary folder needs a name every process agrees on (e.g. all ranks of a sharded save);
    otherwise :func:`staged_folder` picks the name and cleans up.
    """
    final = Path(final).expanduser()
    owned = tuple(also_owned_if)
    mark_owned(filled, kind)
    if fsync:
        _fsync_tree(filled)
    check_replaceable(final, kind, owned)  # it may have appeared while we were writing
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
        os.replace(final, old / "previous")
        os.replace(filled, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(filled, final)
    return final


@contextlib.contextmanager
def staged_folder(final: str | Path, kind: str, *, also_owned_if: Iterable[str] = (),
                  fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling of ``final`` to fill; on success it replaces ``final`` in one rename.

    On an exception the temporary folder is removed and ``final`` is left as it was.
    """
    owned = tuple(also_owned_if)
    final = check_replaceable(final, kind, owned)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        publish_folder(tmp, final, kind, also_owned_if=owned, fsync=fsync)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; it replaces ``path`` only if the block succeeds."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; expected a file path to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    kwargs = {"encoding": encoding} if "b" not in mode else {}
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader never sees a half-written file."""
    with atomic_file(path) as handle:
        handle.write(text)


def safetensors_bytes(tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a safetensors file of ``tensors``, the same in every process for the same input.

    safetensors keeps ``__metadata__`` in a Rust HashMap whose order is seeded per process, so with two or
    more metadata keys the same weights came out as files with different bytes (and sha256) from run to
    run. The header is rewritten with the metadata keys sorted; the tensor entries and data are untouched.
    """
    from safetensors.torch import save

    data = save(dict(tensors), metadata=dict(metadata) if metadata else None)
    if not metadata or len(metadata) < 2:
        return data
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header with spaces to a multiple of 8
    return len(text).to_bytes(8, "little") + text + data[8 + size:]


def write_safetensors(path: str | Path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> None:
    """:func:`safetensors_bytes` written atomically to ``path``."""
    data = safetensors_bytes(tensors, metadata)
    with atomic_file(path, "wb") as handle:
        handle.write(data)
