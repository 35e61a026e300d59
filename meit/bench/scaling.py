"""Training throughput and peak memory for 1 and N processes: ``python -m meit.bench scaling``.

Runs ``meit train`` on a recipe (default: the quickstart recipe on a freshly synthesised dataset) with
1 process, then with N processes under ``accelerate launch`` (gloo on CPU), each for a few optimizer
steps at the same per-process batch, and reports samples/s (from the run's own JSONL log, first step
excluded as warm-up), peak resident memory of the whole process tree, and the scaling efficiency
``samples/s(N) / (N × samples/s(1))``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from meit.tables import format_table
from meit.training.logs import read_jsonl


def _peak_rss(proc: subprocess.Popen, stop: threading.Event, out: list[int]) -> None:
    peak = 0
    parent = psutil.Process(proc.pid)
    while not stop.is_set():
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    out.append(peak)


def run_once(processes: int, recipe: Path, data: Path, out: Path, steps: int, overrides: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    cmd = [sys.executable, "-m", "meit", "train", str(recipe)]
    if processes > 1:
        env["ACCELERATE_USE_CPU"] = "1"
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or processes) // processes))
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--main_process_port", "29577", "-m", "meit.cli", "train", str(recipe)]
    # the LLM stage's step is what scales: no encoder stage before it
    cmd += [f"data.path={data}", f"output_dir={out}", f"train.max_steps={steps}", "train.save_every=null",
            "train.encoder_stage=null",
            "train.log_every=1", "train.trackers=[]", "--no-progress", *overrides]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop, peak = threading.Event(), []
    watcher = threading.Thread(target=_peak_rss, args=(proc, stop, peak))
    watcher.start()
    _, err = proc.communicate()
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"training with {processes} process(es) failed:\n{err[-3000:]}")
    log = read_jsonl(out / "logs" / "train.jsonl")
    times = [r["time"] for r in log]  # the first step is warm-up: time from its end to the last step's end
    per_step = (times[-1] - times[0]) / max(len(times) - 1, 1)
    return {"processes": processes, "steps": len(log), "seconds_per_step": round(per_step, 3),
            "peak_rss_gb": round(peak[0] / 2**30, 2)}


def main(argv: list[str] | None = None) -> int:
    from meit.config import load_recipe
    from meit.quickstart import default_recipe_path
    from meit.synth.prepared import synthetic_prepared

    parser = argparse.ArgumentParser(prog="python -m meit.bench scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=default_recipe_path())
    parser.add_argument("--data", type=Path, default=None, help="prepared dataset (default: synthesise 200 records)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="recipe overrides (section.key=value)")
    args = parser.parse_args(argv)
    batch = load_recipe(args.recipe, args.overrides).train.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or synthetic_prepared(Path(tmp), 200, seed=0, progress=False)
        rows = [run_once(n, args.recipe, data, Path(tmp) / f"run{n}", args.steps, args.overrides)
                for n in (1, args.processes)]
    for row in rows:
        row["samples_per_s"] = round(batch * row["processes"] / row["seconds_per_step"], 2)
    rows[1]["scaling_efficiency"] = round(rows[1]["samples_per_s"] / (args.processes * rows[0]["samples_per_s"]), 3)
    rows[0]["scaling_efficiency"] = 1.0
    print(format_table(rows, [("processes", "processes"), ("seconds_per_step", "s/step"),
                              ("samples_per_s", "samples/s"), ("peak_rss_gb", "peak RSS GB"),
                              ("scaling_efficiency", "efficiency")]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0
