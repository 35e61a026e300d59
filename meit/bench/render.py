"""Rendering throughput: ``python -m meit.bench render [--n 50] [--dpi 100 200] [--fs 500]``.

Images per second of :func:`meit.render.render_paper` per layout and DPI (clean, then augmented with
every effect at strength 0.5), PNG encoding, and the GAF / RP / MTF encodings, on synthetic 10 s
12-lead records. Per-core figures divide by this process's CPU time, so they stay meaningful on a
shared machine; wall-clock figures are printed beside them. Rendering is single-threaded: a data
loader with k workers renders about k times as many.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from meit.render import LAYOUTS, Augmentation, augment, render_paper, signal_image
from meit.render.encodings import pyts_modules
from meit.render.store import png_bytes
from meit.synth.record import make_record
from meit.tables import markdown_table


@dataclass(frozen=True)
class Row:
    what: str
    layout: str
    dpi: str
    size: str
    cpu_per_s: float
    wall_per_s: float


def _time(n: int, step: Callable[[int], object]) -> tuple[float, float]:
    step(0)  # warm: caches (grid background, fonts, numba) are built outside the timing
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        step(i)
    return n / max(time.process_time() - cpu, 1e-9), n / max(time.perf_counter() - wall, 1e-9)


def run_bench(n: int = 50, dpis: tuple[int, ...] = (100, 200), fs: int = 500,
              layouts: tuple[str, ...] = tuple(LAYOUTS), encodings_size: int = 224) -> list[Row]:
    """Time every case on ``n`` distinct synthetic records (made before the clock starts)."""
    signals = [np.asarray(make_record([11, i], fs=fs, seconds=10.0).signal, dtype=np.float32) for i in range(n)]
    strong = Augmentation.uniform(0.5)
    rows: list[Row] = []
    for dpi in dpis:
        for layout in layouts:
            def clean(i: int, layout: str = layout, dpi: int = dpi) -> object:
                return render_paper(signals[i % n], fs, layout=layout, dpi=dpi)
            page = render_paper(signals[0], fs, layout=layout, dpi=dpi).image
            size = f"{page.shape[1]}×{page.shape[0]}"
            rows.append(Row("paper", layout, str(dpi), size, *_time(n, clean)))
            if layout == "3x4":
                def augmented(i: int, dpi: int = dpi) -> object:
                    return augment(render_paper(signals[i % n], fs, dpi=dpi).image, strong, i)
                rows.append(Row("paper + augment all=0.5", layout, str(dpi), size, *_time(n, augmented)))
                rows.append(Row("paper + PNG encode", layout, str(dpi), size,
                                *_time(n, lambda i, dpi=dpi: png_bytes(render_paper(signals[i % n], fs,
                                                                                    dpi=dpi).image))))
    pyts_modules()
    for mode in ("gaf", "rp", "mtf"):
        rows.append(Row(mode, "12 channels", "–", f"{encodings_size}×{encodings_size}",
                        *_time(n, lambda i, mode=mode: signal_image(signals[i % n], fs, mode=mode,
                                                                    size=encodings_size))))
    return rows


def describe(rows: list[Row], n: int, fs: int) -> str:
    header = f"meit render benchmark: {n} synthetic 10 s records at {fs} Hz, one process\n\n"
    return header + markdown_table(
        ["what", "layout", "dpi", "image (W×H)", "images/s per core", "images/s wall"],
        [[r.what, r.layout, r.dpi, r.size, f"{r.cpu_per_s:.1f}", f"{r.wall_per_s:.1f}"] for r in rows],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meit.bench render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="records timed per case (default 50)")
    parser.add_argument("--dpi", type=int, nargs="+", default=[100, 200], help="DPIs (default 100 200)")
    parser.add_argument("--fs", type=int, default=500, help="sampling rate of the records (default 500)")
    parser.add_argument("--layout", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    args = parser.parse_args(argv)
    rows = run_bench(max(1, args.n), tuple(args.dpi), args.fs, tuple(args.layout))
    print(describe(rows, max(1, args.n), args.fs))
    return 0
