"""Build a cache folder once, atomically (:mod:`meit.publish`) under a file lock.

Converted models, tiny test backbones and the offline WordNet copy all live under ``$MEIT_CACHE`` and
are built by this one function, so they share its rules: a stamp says what was built, a different
stamp rebuilds, concurrent processes build once, and a half-built folder is never visible.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from meit.paths import cache_dir
from meit.publish import staged_folder

_MARKER = "meit_build.json"


def _complete(folder: Path, stamp: dict) -> bool:
    marker = folder / _MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("stamp") == stamp
    except (OSError, ValueError):
        return False


def cached_build(name: str, stamp: dict, build: Callable[[Path], None], *, group: str = "models",
                 legacy_markers: Iterable[str] = ()) -> Path:
    """Return ``$MEIT_CACHE/<group>/<name>``, calling ``build(tmp_folder)`` first if it is missing or stale.

    ``group`` may hold ``/`` (nested folders). ``legacy_markers`` name files by which an entry written
    by an older meit is recognised, so it may be replaced.

    ``stamp`` identifies what was built (source file, version); a different stamp rebuilds. Two processes
    racing (e.g. accelerate ranks) build once: the second waits on the lock and reuses the result.
    """
    parent = cache_dir(*group.split("/"))
    target = parent / name
    if _complete(target, stamp):
        return target
    from filelock import FileLock

    with FileLock(str(parent / f".{name}.lock")):
        if _complete(target, stamp):
            return target
        with staged_folder(target, "cache entry", also_owned_if=(_MARKER, *legacy_markers)) as tmp:
            build(tmp)
            (tmp / _MARKER).write_text(json.dumps({"stamp": stamp}, indent=1))
    return target
