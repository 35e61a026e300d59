"""Where a number came from: code version, checkpoint, data manifest hash, decoding settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meit import hashing
from meit.code_version import code_version

__all__ = ["code_version", "file_sha256", "provenance", "weights_sha256"]


def file_sha256(path: Path) -> str | None:
    """The file's sha256, or None when it does not exist (provenance records what is there)."""
    return hashing.file_sha256(path) if path.is_file() else None


#: above this many bytes of weights in all, the base LLM's files (``llm/``) are listed by size, not hashed
#: (hashing 140 GB of a merged 70B model would take longer than many evaluations)
WEIGHT_HASH_LIMIT = 2 * 1024**3


def weights_sha256(folder: Path) -> dict[str, str]:
    """sha256 of every weight file of an artifact, by relative path: the numbers' real identity.

    The trained parts (encoder, projector, finding head, LoRA adapter) are always hashed; the base LLM's
    files too unless the artifact is larger than :data:`WEIGHT_HASH_LIMIT`, when they are listed with
    their size instead.
    """
    files = sorted(folder.rglob("*.safetensors"))
    total = sum(f.stat().st_size for f in files)
    out = {}
    for file in files:
        relative = file.relative_to(folder)
        if total > WEIGHT_HASH_LIMIT and relative.parts[0] == "llm":
            out[str(relative)] = f"not hashed: {file.stat().st_size} bytes (artifact over {WEIGHT_HASH_LIMIT} bytes)"
        else:
            out[str(relative)] = hashing.file_sha256(file)
    return out


def provenance(checkpoint: str | None, data_path: str, split: str, decoding: dict[str, Any],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    data = Path(data_path)
    return {
        "code": code_version(),
        "checkpoint": str(checkpoint) if checkpoint else None,
        "checkpoint_config_sha256": file_sha256(Path(checkpoint) / "meit_model.json") if checkpoint else None,
        "checkpoint_weights_sha256": weights_sha256(Path(checkpoint)) if checkpoint and Path(checkpoint).is_dir()
        else None,
        "data": str(data),
        "data_manifest_sha256": file_sha256(data / "manifest.json"),
        "split": split,
        "decoding": decoding,
        **(extra or {}),
    }
