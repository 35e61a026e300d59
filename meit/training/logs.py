"""A plain JSONL log that is always written, beside whatever accelerate trackers are on."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any


class JsonlLog:
    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self.start = time.time()
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        clean["time"] = round(time.time() - self.start, 3)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(clean) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
