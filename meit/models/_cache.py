"""Build a cache folder once, atomically (temporary folder + rename) under a file lock."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from meit.paths import cache_dir

_MARKER = "meit_build.json"


def _complete(folder: Path, stamp: dict) -> bool:
    marker = folder / _MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("stamp") == stamp
    except (OSError, ValueError):
        return False


def cached_build(name: str, stamp: dict, build: Callable[[Path], None], *, group: str = "models") -> Path:
    """Return ``$MEIT_CACHE/<group>/<name>``, calling ``build(tmp_folder)`` first if it is missing or stale.

    ``stamp`` identifies what was built (source file, version); a different stamp rebuilds. Two processes
    racing (e.g. accelerate ranks) build once: the second waits on the lock and reuses the result.
    """
    parent = cache_dir(group)
    target = parent / name
    if _complete(target, stamp):
        return target
    from filelock import FileLock

    with FileLock(str(parent / f".{name}.lock")):
        if _complete(target, stamp):
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp.", dir=parent))
        try:
            os.chmod(tmp, 0o755)
            build(tmp)
            (tmp / _MARKER).write_text(json.dumps({"stamp": stamp}, indent=1))
            if target.exists():
                stale = Path(tempfile.mkdtemp(prefix=f".{name}.stale.", dir=parent))
                os.rename(target, stale / "old")
                shutil.rmtree(stale, ignore_errors=True)
            os.rename(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
