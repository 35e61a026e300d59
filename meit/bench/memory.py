"""Peak resident memory of this process over a block of work, sampled in a background thread.

``ru_maxrss`` only ever grows over a process's life, so a suite that trains several backbones one after
another in one process cannot read each row's peak from it. Sampling the RSS while a row runs gives that
row's peak (an upper bound when the allocator keeps memory an earlier row freed)."""

from __future__ import annotations

import threading
from types import TracebackType

import psutil


class PeakRss:
    """``with PeakRss() as peak: ...`` then ``peak.megabytes``: the largest RSS seen (every ``interval`` s)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self._process = psutil.Process()
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="meit-peak-rss", daemon=True)

    def _sample(self) -> None:
        while True:
            self._peak = max(self._peak, self._process.memory_info().rss)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)

    @property
    def megabytes(self) -> float:
        return round(self._peak / 2**20, 1)
