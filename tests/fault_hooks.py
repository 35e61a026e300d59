"""Kill a meit command at an exact point, from test code: ``python -m tests.fault_hooks SPEC -- ARGS…``.

Runs ``meit ARGS…`` in this process after wrapping a function that publishes state, so that the
process is SIGKILLed at the point ``SPEC`` names:

- ``shard:N`` (``meit prep``): right after the N-th shard marker of this run is on disk (written by
  the main process with one worker, by a pool worker otherwise; either way the main process dies, and
  the workers are left to notice that their parent is gone, as after a real kill);
- ``finalise`` (``meit prep``): when every shard is done and the split metadata and
  ``rejected.jsonl.tmp`` are written, just before ``dataset_dict.json`` and ``manifest.json``;
- ``checkpoint:N`` (``meit train`` / ``meit pretrain``): right after the periodic checkpoint of step N
  is complete (every rank has saved its part); under ``accelerate launch … -m tests.fault_hooks`` each
  rank runs this module and kills itself there, as a node failure would.

Production code has no kill switch: the points are found from outside, by the files the prep writer
publishes (``data_prep.writer.atomic_write_text``, which pool workers inherit through ``fork``) and by
the training loop's checkpoint function (``meit.training.loop.save_training_state``, looked up by name
at every save).
"""

from __future__ import annotations

import inspect
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

#: the checkout; ``python -m tests.fault_hooks`` must run with it as the working directory
ROOT = Path(__file__).resolve().parents[1]


def killed_after_checkpoint(step: int) -> list[str]:
    """The ``-m …`` arguments that run a meit command through this module, killed after step ``step``'s save.

    They replace ``-m meit`` (or ``-m meit.cli`` after ``accelerate launch``); run with ``cwd=ROOT``.
    """
    return ["-m", "tests.fault_hooks", f"checkpoint:{step}", "--"]


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def install(spec: str) -> None:
    """Arrange for this process to SIGKILL itself at ``spec`` (see the module doc)."""
    if spec.startswith("checkpoint:"):
        _after_checkpoint(_positive(spec))
    else:
        _in_prep(spec)


def _positive(spec: str) -> int:
    try:
        value = int(spec.split(":", 1)[1])
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(f"fault_hooks: {spec.split(':', 1)[0]}:N needs an integer N >= 1, got {spec!r}")
    return value


def _after_checkpoint(target: int) -> None:
    """Wrap the loop's checkpoint function: kill this process once step ``target``'s periodic save returns."""
    from meit.training import loop

    original = loop.save_training_state
    signature = inspect.signature(original)

    def save(*args: object, **kwargs: object) -> Path:
        path = original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        if bound.arguments["step"] == target and not bound.arguments["name_suffix"]:
            _kill(os.getpid())
        return path

    loop.save_training_state = save


def _in_prep(spec: str) -> None:
    """Wrap ``data_prep.writer.atomic_write_text`` to SIGKILL the main process at ``spec``."""
    from data_prep import writer

    main_pid = os.getpid()
    original: Callable[[str | os.PathLike, str], None] = writer.atomic_write_text
    if spec == "finalise":

        def write(path: str | os.PathLike, text: str) -> None:
            if Path(path).name == "dataset_dict.json":
                _kill(main_pid)
            original(path, text)

    elif spec.startswith("shard:"):
        target = _positive(spec)
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
        raise SystemExit(f"fault_hooks: unknown kill point {spec!r}; expected shard:N, finalise or checkpoint:N")
    writer.atomic_write_text = write


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit("usage: python -m tests.fault_hooks shard:N|finalise|checkpoint:N -- MEIT_ARGS…")
    install(argv[0])
    from meit.cli import main as meit

    return meit(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
