"""Throughput of the generator: ``python -m meit.bench synth`` or ``meit synth --bench``.

Times the full path (draw, render, noise, quantise, decimate, write WFDB at 500 and 100 Hz plus the
CSVs) and the in-memory path alone. Per-core figures divide records by the CPU time this process
used, so they stay meaningful on a shared machine; wall-clock figures are printed next to them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from meit.synth.alloc import tune_allocator
from meit.synth.record import make_record
from meit.synth.writer import generate_ptbxl_layout


@dataclass(frozen=True)
class BenchResult:
    n: int
    fs: int
    seconds: float
    workers: int
    memory_cpu_rps: float  # records per CPU-second, in memory
    written_cpu_rps: float  # records per CPU-second of this process (workers=1 only)
    written_wall_rps: float  # records per wall-clock second, all workers

    def describe(self) -> str:
        lines = [
            f"meit synth benchmark: {self.n} records of {self.seconds:g} s at {self.fs} Hz",
            f"  in memory, per core:                 {self.memory_cpu_rps:8.1f} records/s",
        ]
        if self.workers == 1:
            lines.append(f"  written (500 + 100 Hz + CSV), per core: {self.written_cpu_rps:5.1f} records/s")
        lines.append(
            f"  written, wall clock, {self.workers} worker(s):   {self.written_wall_rps:8.1f} records/s"
        )
        return "\n".join(lines)


def run_bench(n: int = 1000, fs: int = 500, seconds: float = 10.0, workers: int = 1, seed: int = 0) -> BenchResult:
    """Measure records/s in memory and written to a temporary PTB-XL layout."""
    with tempfile.TemporaryDirectory(prefix="meit-synth-bench-") as tmp:
        generate_ptbxl_layout(Path(tmp) / "warm", 10, seed=seed, fs=fs, seconds=seconds, progress=False)
        cpu = time.process_time()
        for i in range(n):
            make_record([seed, 2, i + 1], fs=fs, seconds=seconds, with_lr=fs == 500)
        memory = n / max(time.process_time() - cpu, 1e-9)
        cpu, wall = time.process_time(), time.perf_counter()
        generate_ptbxl_layout(Path(tmp) / "bench", n, seed=seed, fs=fs, seconds=seconds, workers=workers,
                              progress=False)
        written_cpu = n / max(time.process_time() - cpu, 1e-9)
        written_wall = n / (time.perf_counter() - wall)
    return BenchResult(n, fs, seconds, workers, memory, written_cpu, written_wall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meit.bench synth", description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--fs", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    tune_allocator()
    print(run_bench(args.n, args.fs, args.seconds, args.workers).describe())
    return 0
