"""Throughput of the generator: ``python -m meit.synth.bench`` or ``meit synth --bench``.

Times the full path (draw, render, noise, quantise, decimate, write WFDB at 500 and 100 Hz) on one
core, and the in-memory path alone, so regressions in either show up.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from meit.synth.record import make_record
from meit.synth.writer import generate_ptbxl_layout


@dataclass(frozen=True)
class BenchResult:
    n: int
    fs: int
    seconds: float
    workers: int
    memory_records_per_s: float
    written_records_per_s: float

    def describe(self) -> str:
        return (
            f"meit synth benchmark: {self.n} records of {self.seconds:g} s at {self.fs} Hz, "
            f"{self.workers} worker(s)\n"
            f"  in memory (1 core):           {self.memory_records_per_s:8.1f} records/s\n"
            f"  written, 500+100 Hz + CSV:    {self.written_records_per_s:8.1f} records/s "
            f"({self.written_records_per_s / self.workers:.1f} per worker)"
        )


def run_bench(n: int = 1000, fs: int = 500, seconds: float = 10.0, workers: int = 1, seed: int = 0) -> BenchResult:
    """Measure records/s in memory and written to a temporary PTB-XL layout."""
    make_record(seed, fs=fs, seconds=seconds)  # warm caches (filter design, imports)
    start = time.perf_counter()
    for i in range(n):
        make_record([seed, 2, i + 1], fs=fs, seconds=seconds, with_lr=fs == 500)
    memory = n / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory(prefix="meit-synth-bench-") as tmp:
        start = time.perf_counter()
        generate_ptbxl_layout(Path(tmp), n, seed=seed, fs=fs, seconds=seconds, workers=workers, progress=False)
        written = n / (time.perf_counter() - start)
    return BenchResult(n, fs, seconds, workers, memory, written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meit.synth.bench", description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--fs", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    print(run_bench(args.n, args.fs, args.seconds, args.workers).describe())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
