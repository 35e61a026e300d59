"""The example ECGs shipped with the server (two real PTB-XL records, CC BY 4.0; see ``examples/SOURCES.md``).

They are read with the same reader as uploads, so picking one on the page exercises the whole path.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from meit.leads import CANONICAL_LEADS
from meit.records import read_ecg

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


@cache
def example_list() -> tuple[dict[str, Any], ...]:
    data = json.loads((EXAMPLES_DIR / "examples.json").read_text(encoding="utf-8"))
    return tuple(data["examples"])


def example_names() -> list[str]:
    return [e["name"] for e in example_list()]


def load_example(name: str) -> dict[str, Any] | None:
    """``{"fs", "leads", "signal", "reference", ...}`` of a shipped example (None for an unknown name)."""
    entry = next((e for e in example_list() if e["name"] == name), None)
    if entry is None:
        return None
    signal, fs, _ = read_ecg(EXAMPLES_DIR / entry["record"])
    return {**entry, "fs": fs, "leads": list(CANONICAL_LEADS), "signal": signal.round(4).tolist(),
            "attribution": "PTB-XL (Wagner et al., Sci Data 2020; PhysioNet), CC BY 4.0"}
