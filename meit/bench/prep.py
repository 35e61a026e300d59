"""Preparation benchmark: records/s and peak memory on synthetic 500 Hz PTB-XL-layout records.

    python -m meit.bench prep --records 2000 20000 --workers 2

Raw records are written once with ``wfdb.wrsamp`` (cached under ``--dir``); each preparation runs
in a fresh process whose whole process tree (main + workers) is sampled for RSS. The targets are
≥ 150 records/s per worker and a peak that stays flat as the dataset grows (< 1.5 GB).
``records/CPU-s`` (records per CPU-second of the whole tree) does not depend on what else the
machine is running; ``load`` is the 1-minute load average when the run ended.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from meit.paths import cache_dir
from meit.publish import check_replaceable
from meit.tables import markdown_table

FS = 500
SECONDS = 10.0
_NAMES = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _write_block(args: tuple[str, int, int]) -> None:
    import wfdb

    root, start, stop = args
    t = np.arange(round(FS * SECONDS)) / FS
    for ecg_id in range(start, stop):
        rng = np.random.default_rng(ecg_id)
        rate = rng.uniform(0.8, 1.8)
        beat = np.exp(-(((t * rate) % 1.0) - 0.3) ** 2 / 0.0015)
        sig = rng.uniform(-1.5, 1.5, size=(12, 1)) * beat + 0.02 * rng.standard_normal((12, t.size))
        if ecg_id % 97 == 0:
            sig[ecg_id % 12, 1000:1010] = np.nan  # a few records need repair, as real data does
        folder = Path(root) / "records500" / f"{ecg_id // 1000 * 1000:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(f"{ecg_id:05d}_hr", fs=FS, units=["mV"] * 12, sig_name=_NAMES, p_signal=sig.T.copy(),
                    fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))


def make_raw(root: Path, n: int, workers: int) -> Path:
    """A PTB-XL-layout root of ``n`` 10 s 500 Hz records (reused when already complete)."""
    import pandas as pd

    done = root / ".complete"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    ids = list(range(1, n + 1))
    blocks = [(str(root), s, min(s + 250, n + 1)) for s in range(1, n + 1, 250)]
    with mp.get_context("fork" if sys.platform.startswith("linux") else "spawn").Pool(workers) as pool:
        pool.map(_write_block, blocks)
    table = pd.DataFrame({
        "ecg_id": ids,
        "patient_id": [float(10_000 + i // 2) for i in ids],
        "age": [float(20 + i % 70) for i in ids],
        "sex": [i % 2 for i in ids],
        "report": ["sinusrhythmus normales ekg" if i % 3 else "sinusrhythmus linkstyp" for i in ids],
        "scp_codes": ["{'NORM': 100.0, 'SR': 0.0}"] * n,
        "strat_fold": [(i // 2) % 10 + 1 for i in ids],
        "filename_lr": [f"records100/{i // 1000 * 1000:05d}/{i:05d}_lr" for i in ids],
        "filename_hr": [f"records500/{i // 1000 * 1000:05d}/{i:05d}_hr" for i in ids],
    })
    table.to_csv(root / "ptbxl_database.csv", index=False)
    done.write_text(str(n))
    return root


def _tree_rss(proc) -> tuple[int, int]:
    """(sum, max) RSS over a process and all its descendants, in bytes."""
    import psutil

    total = peak = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for member in members:
        try:
            rss = member.memory_info().rss
        except psutil.Error:
            continue
        total += rss
        peak = max(peak, rss)
    return total, peak


def run_once(root: Path, out: Path, workers: int) -> dict:
    """Prepare ``root`` in a fresh process; wall time and sampled peak RSS of its process tree."""
    import psutil

    check_replaceable(out, "prepared dataset")  # only ever delete an earlier prep output
    shutil.rmtree(out, ignore_errors=True)
    code = (
        "import json, resource, time\n"
        "from data_prep.ptbxl import prepare_ptbxl\n"
        "r0 = resource.getrusage(resource.RUSAGE_SELF)\n"
        "t = time.perf_counter()\n"
        f"m = prepare_ptbxl({str(root)!r}, {str(out)!r}, workers={workers}, progress=False)\n"
        "t = time.perf_counter() - t\n"
        "me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "cpu = me.ru_utime + me.ru_stime - r0.ru_utime - r0.ru_stime + kids.ru_utime + kids.ru_stime\n"
        "print(json.dumps({'counts': m['counts'], 'rejected': m['rejected'], 'prep_s': t, 'cpu_s': cpu,\n"
        "                  'main_maxrss_kb': me.ru_maxrss, 'worker_maxrss_kb': kids.ru_maxrss}))\n"
    )
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak_total = peak_single = 0
    while child.poll() is None:
        total, single = _tree_rss(proc)
        peak_total, peak_single = max(peak_total, total), max(peak_single, single)
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    stdout = child.stdout.read() if child.stdout else ""
    if child.returncode != 0:
        raise SystemExit(f"preparation failed with exit code {child.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    n = sum(result["counts"].values()) + result["rejected"]
    return {
        "records": n,
        "workers": workers,
        "wall_s": round(elapsed, 2),
        "prep_s": round(result["prep_s"], 2),
        "records_per_s": round(n / result["prep_s"], 1),
        "records_per_s_per_worker": round(n / result["prep_s"] / workers, 1),
        "records_per_cpu_s": round(n / result["cpu_s"], 1),
        "peak_rss_tree_mb": round(peak_total / 2**20),
        "peak_rss_main_mb": round(result["main_maxrss_kb"] / 1024),
        "peak_rss_worker_mb": round(result["worker_maxrss_kb"] / 1024),
        "rejected": result["rejected"],
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meit.bench prep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="where raw records and outputs go")
    parser.add_argument("--keep-output", action="store_true", help="keep the prepared datasets")
    args = parser.parse_args(argv)
    base = args.dir or cache_dir("bench", "prep")
    rows = []
    for n in args.records:
        t0 = time.perf_counter()
        root = make_raw(base / f"raw-{n}", n, args.workers)
        print(f"raw records ready: {n} in {time.perf_counter() - t0:.0f} s ({root})", file=sys.stderr)
        out = base / f"out-{n}"
        row = run_once(root, out, args.workers)
        if not args.keep_output:
            shutil.rmtree(out, ignore_errors=True)
        print(json.dumps(row), flush=True)
        rows.append(row)
    keys = ("records", "workers", "wall_s", "prep_s", "records_per_s", "records_per_s_per_worker", "records_per_cpu_s",
            "peak_rss_tree_mb", "peak_rss_main_mb", "peak_rss_worker_mb", "load_avg_1min")
    header = ("records", "workers", "wall s", "prep s", "records/s", "records/s/worker", "records/CPU-s",
              "peak RSS tree MB", "main MB", "worker MB", "load")
    print(markdown_table(header, ([str(r[k]) for k in keys] for r in rows), left=0))
    return 0
