"""Kill trials: a ``meit`` command SIGKILLed from outside at a random moment, rerun, compared with a reference.

The kill comes from the harness, not from a hook in the code under test: the whole process tree (the
launcher, its process group, and children in sessions of their own, as torch's elastic agent starts
its ranks) is stopped first, so nothing can fork or write while it is being collected, then killed at
once, as a power cut or a cluster's job kill would. The rerun is what an operator does next: the
same command (``train.resume=auto`` for training), and its output must equal an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from meit.errors import MeitError
from meit.hashing import file_sha256

#: environment variables of an enclosing distributed launch, which would confuse a nested one
_LAUNCH_VARS = ("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without distributed-launch variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCH_VARS)}
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port nobody listens on now (other jobs on the machine launch distributed runs too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_tree(pid: int) -> int:
    """SIGKILL ``pid``, its process group and every descendant; returns how many processes were hit.

    Descendants are collected while stopped (SIGSTOP), so none can start a child or exit and have its
    children re-parented away from the tree between collection and the kill.
    """
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return 0
    found: dict[int, psutil.Process] = {}
    frontier = [root]
    while frontier:
        for proc in frontier:
            found[proc.pid] = proc
            try:
                proc.send_signal(signal.SIGSTOP)
            except psutil.Error:
                continue
        nxt = []
        for proc in frontier:
            try:
                nxt.extend(child for child in proc.children() if child.pid not in found)
            except psutil.Error:
                continue
        frontier = nxt
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for proc in found.values():
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            continue
    psutil.wait_procs([p for p in found.values() if p.pid != pid], timeout=30)
    return len(found)


@dataclass
class Run:
    """One command's fate: exit code (negative: killed by that signal), wall seconds, log tail."""

    returncode: int
    seconds: float
    killed: bool
    log: Path

    def error(self) -> str:
        """The line of the log that says what went wrong (meit's one-line error, else the last line)."""
        lines = [ln.strip() for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        said = [ln for ln in lines if ": error:" in ln]
        where = "traceback; " if any(ln.startswith("Traceback") for ln in lines) else ""
        last = said[-1] if said else (lines[-1] if lines else "no output")
        return f"exit {self.returncode}: {where}{last[:300]}"


def run_command(argv: list[str], env: Mapping[str, str], log: Path, *, kill_after: float | None = None,
                timeout: float = 1800.0) -> Run:
    """Run ``argv`` in a session of its own; SIGKILL its tree at ``kill_after`` s if still running.

    A run that outlives ``timeout`` is killed too and reported as exit code -9 with ``killed=False``
    (a hang, not a planned kill).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as sink:
        proc = subprocess.Popen(argv, env=dict(env), stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
        planned = False
        try:
            proc.wait(timeout=timeout if kill_after is None else min(kill_after, timeout))
        except subprocess.TimeoutExpired:
            planned = kill_after is not None and kill_after < timeout
            kill_tree(proc.pid)
            proc.wait()
            if not planned:
                sink.write(f"\n[fault bench] hung: killed after {timeout:.0f} s\n")
    # a run that exited on its own just before the kill was not killed
    killed = planned and proc.returncode == -signal.SIGKILL
    return Run(proc.returncode, time.monotonic() - start, killed, log)


# -- comparisons: None when equal, else the first difference in words ----------------------------------


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def tree_difference(reference: Path, other: Path) -> str | None:
    """The first file (sorted by path) that is missing, extra, or has other bytes in ``other``."""
    ref, got = _files(reference), _files(other)
    for rel in sorted(set(ref) | set(got)):
        if rel not in got:
            return f"{rel}: missing after the rerun"
        if rel not in ref:
            return f"{rel}: not in the uninterrupted run"
        if ref[rel].stat().st_size != got[rel].stat().st_size or ref[rel].read_bytes() != got[rel].read_bytes():
            return f"{rel}: contents differ"
    return None


def json_difference(a: Any, b: Any, where: str = "") -> str | None:
    """The first key path at which two JSON values differ (``bleu_4: 0.1 ≠ 0.2``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                return f"{path}: only in {'the rerun' if key in b else 'the uninterrupted run'}"
            found = json_difference(a[key], b[key], path)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where or 'value'}: {len(a)} items ≠ {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = json_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{where or 'value'}: {str(a)[:60]} ≠ {str(b)[:60]}"


def prep_difference(reference: Path, out: Path) -> str | None:
    """Same manifest ``content_hash`` and the same bytes in every file of the prepared dataset."""
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return "manifest.json: missing after the rerun"
    a = json.loads((reference / "manifest.json").read_text())["content_hash"]
    b = json.loads(manifest.read_text()).get("content_hash")
    if a != b:
        return f"manifest content_hash {a[:19]}… ≠ {str(b)[:19]}…"
    return tree_difference(reference, out)


def safetensors_digest(path: Path) -> str:
    """sha256 of a safetensors file's tensors and its header read back with sorted keys.

    Tells apart files whose tensors differ from files that differ only in the order of their header
    (safetensors writes ``__metadata__`` from a hash map seeded per process; meit sorts it, see
    ``meit.publish.safetensors_bytes``, so a header-order difference is a finding of its own).
    """
    import hashlib
    import struct

    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + size])
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    digest.update(data[8 + size :])
    return digest.hexdigest()


def _safetensors(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*.safetensors"))}


def weights_difference(reference: Path, out: Path) -> str | None:
    """Same bytes in every ``*.safetensors`` of the final artifact (``final/``); if not, do the tensors differ."""
    if not (out / "final").is_dir():
        return "final/: no artifact after the rerun"
    a, b = _safetensors(reference / "final"), _safetensors(out / "final")
    for rel in sorted(set(a) | set(b)):
        if rel not in b or rel not in a:
            return f"final/{rel}: {'missing' if rel not in b else 'extra'}"
        if safetensors_digest(a[rel]) != safetensors_digest(b[rel]):
            return f"final/{rel}: tensors differ"
        if file_sha256(a[rel]) != file_sha256(b[rel]):
            return f"final/{rel}: same tensors and metadata, other file bytes (header order)"
    return None


def losses_difference(reference: Path, out: Path) -> str | None:
    """Same steps with the same ``loss`` (and ``val_loss`` where logged) in ``logs/train.jsonl``."""
    from meit.training.logs import read_jsonl

    log = out / "logs" / "train.jsonl"
    if not log.is_file():
        return "logs/train.jsonl: missing after the rerun"

    def losses(path: Path) -> list[tuple[Any, Any, Any]]:
        return [(r.get("step"), r.get("loss"), r.get("val_loss")) for r in read_jsonl(path)]

    a, b = losses(reference / "logs" / "train.jsonl"), losses(log)
    if [s for s, _, _ in a] != [s for s, _, _ in b]:
        return f"logs/train.jsonl: steps {[s for s, _, _ in b]} ≠ {[s for s, _, _ in a]}"
    for (step, loss_a, val_a), (_, loss_b, val_b) in zip(a, b, strict=True):
        if loss_a != loss_b:
            return f"logs/train.jsonl step {step}: loss {loss_b} ≠ {loss_a}"
        if val_a != val_b:
            return f"logs/train.jsonl step {step}: val_loss {val_b} ≠ {val_a}"
    return None


def training_difference(reference: Path, out: Path) -> str | None:
    return weights_difference(reference, out) or losses_difference(reference, out)


#: metrics.json fields that describe the machine or the checkout, not the evaluation: the code checkout
#: (the tree may be edited meanwhile) and generation's wall time (a machine shared with other jobs)
_VOLATILE_METRICS: dict[str, tuple[str, ...]] = {"provenance": ("code",), "generation": ("seconds", "reports_per_s")}


def eval_difference(reference: Path, out: Path) -> str | None:
    """Same ``predictions.jsonl`` bytes and the same ``metrics.json`` apart from checkout and timing."""
    for name in ("predictions.jsonl", "metrics.json"):
        if not (out / name).is_file():
            return f"{name}: missing after the rerun"
    ref_lines = (reference / "predictions.jsonl").read_text().splitlines()
    got_lines = (out / "predictions.jsonl").read_text().splitlines()
    for i, (x, y) in enumerate(zip(ref_lines, got_lines, strict=False), start=1):
        if x != y:
            return f"predictions.jsonl line {i} (id {json.loads(x).get('id')}) differs"
    if len(ref_lines) != len(got_lines):
        return f"predictions.jsonl: {len(got_lines)} lines ≠ {len(ref_lines)}"

    def metrics(folder: Path) -> dict[str, Any]:
        data = json.loads((folder / "metrics.json").read_text())
        for section, keys in _VOLATILE_METRICS.items():
            for key in keys:
                data.get(section, {}).pop(key, None)
        return data

    found = json_difference(metrics(reference), metrics(out))
    return f"metrics.json: {found}" if found else None


# -- jobs and trials ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillJob:
    """A command to kill: its argv for an output folder (and for the rerun), and how outputs are compared."""

    name: str
    what: str
    argv: Callable[[Path, bool], list[str]]  # (output folder, is the rerun) → command line
    compare: Callable[[Path, Path], str | None]  # (reference output, trial output) → first difference
    env: Callable[[], dict[str, str]] = field(default=clean_env)  # called per run: fresh ports
    notes: Callable[[Path, Path], str] = lambda reference, out: ""  # what is worth knowing though equal


@dataclass
class Reference:
    out: Path
    seconds: float


def run_reference(job: KillJob, folder: Path, timeout: float) -> Reference:
    """The uninterrupted run every trial is compared with; its wall time bounds the kill times."""
    out = folder / "reference"
    run = run_command(job.argv(out, False), job.env(), folder / "reference.log", timeout=timeout)
    if run.returncode != 0:
        raise MeitError(f"{job.name}: the uninterrupted reference run failed ({run.error()}); "
                           f"log: {run.log}")
    return Reference(out, run.seconds)


#: what a rerun logs when it continues from saved state: training's checkpoint, prep's finished shards
_RESUMED = (re.compile(r"resumed from \S*?(step-\d+)"), re.compile(r"resuming: (\d+ of \d+) records"))


def resumed_from(log: Path) -> str:
    """What the rerun continued from (``step-4``, ``240 of 400``), or "" when it started afresh."""
    text = log.read_text(errors="replace")
    for pattern in _RESUMED:
        found = pattern.search(text)
        if found:
            return found.group(1)
    return ""


def kill_time(seed: int, job: str, trial: int, trials: int, seconds: float) -> float:
    """When trial ``trial`` of ``trials`` kills: uniform within its ``1/trials`` stratum of ``[0, seconds)``.

    Stratified, so that a few trials spread over the run instead of bunching by chance; over the
    trials together (and for any one trial whose stratum is not known) the time is uniform within the run.
    Drawn from the seed, the job and the trial alone, so reruns of the bench kill at the same moments.
    """
    fraction = random.Random(f"{seed}/{job}/{trial}").uniform(trial - 1, trial) / trials
    return fraction * seconds


def kill_trial(job: KillJob, reference: Reference, folder: Path, trial: int, trials: int, seed: int,
               timeout: float, keep: bool = False) -> dict[str, Any]:
    """Start, SIGKILL at a seeded time (:func:`kill_time`), rerun if the kill landed, compare with the reference.

    Outcomes: ``identical``, ``differing`` (``detail`` names the first difference), ``rerun_error``
    (the rerun after the kill failed) or ``run_error`` (the run failed before the kill came).
    """
    at = kill_time(seed, job.name, trial, trials, reference.seconds)
    out = folder / f"trial-{trial}"
    first = run_command(job.argv(out, False), job.env(), folder / f"trial-{trial}.log", kill_after=at, timeout=timeout)
    row: dict[str, Any] = {"kind": f"kill:{job.name}", "case": trial, "kill_at_s": round(at, 2),
                           "reference_s": round(reference.seconds, 1), "killed": first.killed}
    final = first
    if first.killed:
        final = run_command(job.argv(out, True), job.env(), folder / f"trial-{trial}-rerun.log", timeout=timeout)
        row["rerun_s"] = round(final.seconds, 1)
        row["resumed_from"] = resumed_from(final.log)
        if final.returncode != 0:
            row.update(outcome="rerun_error", detail=final.error())
    elif first.returncode != 0:
        row.update(outcome="run_error", detail=first.error())
    if "outcome" not in row:
        difference = job.compare(reference.out, out)
        row.update(outcome="identical" if difference is None else "differing", detail=difference or "",
                   note=job.notes(reference.out, out))
    if not keep and row["outcome"] == "identical":
        shutil.rmtree(out, ignore_errors=True)
    return row
