"""Kill ``meit prep`` at an exact point, from test code: ``python -m tests.fault_hooks SPEC -- ARGS…``.

Runs ``meit ARGS…`` in this process after wrapping the prepared-dataset writer's file publishing so
that the main process is SIGKILLed at the point ``SPEC`` names:

- ``shard:N``: right after the N-th shard marker of this run is on disk (written by the main process
  with one worker, by a pool worker otherwise; either way the main process dies, and the workers are
  left to notice that their parent is gone, as after a real kill);
- ``finalise``: when every shard is done and the split metadata and ``rejected.jsonl.tmp`` are
  written, just before ``dataset_dict.json`` and ``manifest.json``.

Production code has no kill switch: the points are found from outside by the files the writer
publishes (``data_prep.writer.atomic_write_text``), which pool workers inherit through ``fork``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def install(spec: str) -> None:
    """Wrap ``data_prep.writer.atomic_write_text`` to SIGKILL this process at ``spec`` (see the module doc)."""
    from data_prep import writer

    main_pid = os.getpid()
    original: Callable[[str | os.PathLike, str], None] = writer.atomic_write_text
    if spec == "finalise":

        def write(path: str | os.PathLike, text: str) -> None:
            if Path(path).name == "dataset_dict.json":
                _kill(main_pid)
            original(path, text)

    elif spec.startswith("shard:"):
        target = int(spec.split(":", 1)[1])
        if target < 1:
            raise SystemExit(f"fault_hooks: shard:N needs N >= 1, got {spec!r}")
        # shared with the pool workers, which are forked after this point
        written = mp.get_context("fork").Value("i", 0)

        def write(path: str | os.PathLike, text: str) -> None:
            original(path, text)
            if Path(path).parent.name != "markers":
                return
            with written.get_lock():
                written.value += 1
                reached = written.value >= target
            if reached:
                _kill(main_pid)

    else:
        raise SystemExit(f"fault_hooks: unknown kill point {spec!r}; expected shard:N or finalise")
    writer.atomic_write_text = write


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit("usage: python -m tests.fault_hooks shard:N|finalise -- MEIT_ARGS…")
    install(argv[0])
    from meit.cli import main as meit

    return meit(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
