"""Where meit keeps caches: outside the repo, overridable by ``MEIT_CACHE``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """Return (and create) ``$MEIT_CACHE/<parts>`` (default ``~/.cache/meit``)."""
    root = Path(os.environ.get("MEIT_CACHE") or Path.home() / ".cache" / "meit").expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def hub_offline() -> bool:
    """True when the user asked the Hugging Face libraries not to touch the network."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}
