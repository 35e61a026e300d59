"""Which code produced an output: the package version and, in a git checkout, the commit (dirty or not).

A leaf, so every layer that records where a number or an artifact came from (evaluation's provenance,
the model card written by training, pretraining and evaluation) reports it the same way.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from meit import __version__


def code_version() -> dict[str, str | None]:
    """The package version and, when run from a git checkout, the commit (with a dirty flag)."""
    root = Path(__file__).resolve().parents[1]
    commit = None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
        if out.returncode == 0:
            commit = out.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5, check=False).stdout.strip()
            if dirty:
                commit += "-dirty"
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"meit": __version__, "git_commit": commit}
