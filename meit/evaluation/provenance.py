"""Where a number came from: code version, checkpoint, data manifest hash, decoding settings."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from meit import __version__, hashing


def code_version() -> dict[str, str | None]:
    """The package version and, when run from a git checkout, the commit (with a dirty flag)."""
    root = Path(__file__).resolve().parents[2]
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


def file_sha256(path: Path) -> str | None:
    """The file's sha256, or None when it does not exist (provenance records what is there)."""
    return hashing.file_sha256(path) if path.is_file() else None


def provenance(checkpoint: str | None, data_path: str, split: str, decoding: dict[str, Any],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    data = Path(data_path)
    return {
        "code": code_version(),
        "checkpoint": str(checkpoint) if checkpoint else None,
        "checkpoint_config_sha256": file_sha256(Path(checkpoint) / "meit_model.json") if checkpoint else None,
        "data": str(data),
        "data_manifest_sha256": file_sha256(data / "manifest.json"),
        "split": split,
        "decoding": decoding,
        **(extra or {}),
    }
