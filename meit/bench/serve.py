"""Serving latency and throughput: ``python -m meit.bench serve``.

Starts ``meit serve`` on 127.0.0.1 in a child process (``--threads`` torch threads), then for each batching
mode (on / off) and each number of concurrent clients sends ``--requests`` JSON requests (real PTB-XL
records shipped with the server, 10 s at 100 Hz) over HTTP and reports requests/s and the p50/p95
latency a client sees. Each client sends its next request when the previous one is answered. The model
is a fresh (untrained) artifact of ``--model`` (``tiny`` or ``smollm2``) unless ``--checkpoint`` is given:
latency does not depend on training. Verification runs as in a default server (``--no-verify`` drops it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from meit.tables import format_table

PROG = "python -m meit.bench serve"
MODELS = {
    "tiny": {"llm": "tiny-llama", "encoder": "resnet1d-tiny", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
    "smollm2": {"llm": "smollm2-135m-instruct", "encoder": "resnet1d-18", "lora": {"r": 8, "alpha": 16}},
}


def _artifact(model: str, folder: Path) -> Path:
    """An untrained artifact of the named model (100 Hz, 10 s input), saved like a trained one."""
    import torch

    from meit.config import ModelConfig
    from meit.models import MeitModel

    torch.manual_seed(0)
    built = MeitModel.build(ModelConfig(fusion="kv", **MODELS[model]), data_fs=100, data_seconds=10.0)
    return built.save_pretrained(folder / model)


def _bodies() -> list[bytes]:
    from meit.serve.examples import example_names, load_example

    bodies = []
    for name in example_names():
        example = load_example(name)
        assert example is not None
        bodies.append(json.dumps({k: example[k] for k in ("fs", "leads", "signal")}).encode())
    return bodies


class _Server:
    """``meit serve`` in a child process (clients and server must not share one interpreter's GIL)."""

    def __init__(self, checkpoint: Path, port: int, options: list[str], threads: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "meit", "serve", "--checkpoint", str(checkpoint),
                                          "--port", str(port), *options], stdout=out, stderr=subprocess.STDOUT,
                                         env=env)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"meit serve did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _load(url: str, bodies: list[bytes], clients: int, requests: int) -> dict[str, Any]:
    """``clients`` closed-loop clients share ``requests`` requests; latencies per request, wall time overall."""
    import httpx

    latencies: list[float] = []
    batch_sizes: list[int] = []
    sent = 0

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < requests:
            body = bodies[sent % len(bodies)]
            sent += 1
            start = time.perf_counter()
            response = await c.post(f"{url}/v1/report", content=body, headers={"Content-Type": "application/json"})
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()
            batch_sizes.append(response.json()["timing"]["batch_requests"])

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as c:
        start = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {"requests": len(latencies), "seconds": round(wall, 2), "rps": round(len(latencies) / wall, 3),
            "p50_ms": round(float(np.percentile(ms, 50))), "p95_ms": round(float(np.percentile(ms, 95))),
            "mean_batch": round(float(np.mean(batch_sizes)), 2)}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--checkpoint", default=None, help="serve this artifact instead of a fresh --model")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--requests", type=int, default=32, help="requests per (mode, concurrency)")
    parser.add_argument("--new-tokens", type=int, default=32, help="max new tokens per report")
    parser.add_argument("--window-ms", type=float, default=20.0)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (cores to use)")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    bodies = _bodies()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="meit-bench-serve-") as tmp:
        checkpoint = Path(args.checkpoint) if args.checkpoint else _artifact(args.model, Path(tmp))
        for batching in (True, False):
            options = ["--max-new-tokens", str(args.new_tokens), "--batch-window-ms", str(args.window_ms),
                       "--max-batch", str(args.max_batch)]
            options += ([] if batching else ["--no-batching"]) + (["--no-verify"] if args.no_verify else [])
            server = _Server(checkpoint, _free_port(), options, args.threads, Path(tmp) / "server.log")
            try:
                server.wait_ready()
                asyncio.run(_load(server.url, bodies, 1, 2))  # warm-up: first-call costs (imports, allocations)
                for clients in args.concurrency:
                    result = asyncio.run(_load(server.url, bodies, clients, args.requests))
                    rows.append({"batching": "on" if batching else "off", "clients": clients, **result})
                    print(f"batching {rows[-1]['batching']}, {clients} clients: {result}", flush=True)
            finally:
                server.stop()
    off = {r["clients"]: r["rps"] for r in rows if r["batching"] == "off"}
    for r in rows:
        r["gain"] = f"{r['rps'] / off[r['clients']]:.2f}x" if r["batching"] == "on" and off.get(r["clients"]) else ""
    name = args.checkpoint or args.model
    print(f"\n{name}: {args.requests} requests per row, max {args.new_tokens} new tokens, "
          f"{args.threads} threads, window {args.window_ms:g} ms, max batch {args.max_batch}, "
          f"verification {'off' if args.no_verify else 'on'}")
    print(format_table(rows, [("batching", "batching"), ("clients", "clients"), ("requests", "requests"),
                              ("rps", "requests/s"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"),
                              ("mean_batch", "mean batch"), ("gain", "vs off")]))
    if args.json:
        from meit.publish import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")
    return 0
