"""A preparation killed with SIGKILL at any point and re-run ends with the same bytes as an uninterrupted one.

Exact kill points come from ``tests/fault_hooks.py``, which runs ``meit prep`` with the writer wrapped from
outside; production code has no kill switch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from data_prep.ptbxl import prepare_ptbxl
from tests.raw_fixtures import make_ptbxl

SHARD = 4
ROOT = Path(__file__).resolve().parents[1]


def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def raw_and_reference(tmp_path_factory):
    raw = make_ptbxl(tmp_path_factory.mktemp("resume_raw"), 30, fs=100)
    ref = tmp_path_factory.mktemp("resume_ref") / "out"
    prepare_ptbxl(raw.root, ref, source="records100", shard_size=SHARD, workers=1, progress=False)
    return raw, _tree(ref)


def _args(root: Path, out: Path, workers: int) -> list[str]:
    return ["prep", "ptbxl", str(root), str(out), "--source", "records100", "--shard-size", str(SHARD),
            "--workers", str(workers), "--no-progress"]


def _cmd(root: Path, out: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "meit", *_args(root, out, workers)]


def _killed_at(kill_at: str, root: Path, out: Path, workers: int) -> list[str]:
    """``meit prep`` run through the test-side hook that SIGKILLs it at ``kill_at``."""
    return [sys.executable, "-m", "tests.fault_hooks", kill_at, "--", *_args(root, out, workers)]


def _markers(out: Path) -> int:
    return len(list((out / ".work" / "markers").glob("*.json")))


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


@pytest.mark.parametrize("kill_at", ["shard:1", "shard:4", "finalise"])
def test_sigkill_then_rerun_is_identical(raw_and_reference, tmp_path, kill_at):
    raw, reference = raw_and_reference
    out = tmp_path / "out"
    proc = subprocess.run(_killed_at(kill_at, raw.root, out, 2), capture_output=True, text=True, cwd=ROOT,
                          start_new_session=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (out / "manifest.json").exists()
    shards = len([name for name in reference if name.endswith(".arrow")])
    if kill_at == "finalise":  # every shard done, split metadata written, the top-level files not yet
        assert _markers(out) == shards and (out / "rejected.jsonl.tmp").is_file()
        assert not (out / "dataset_dict.json").exists()
    else:  # killed after that many shards (the other worker may finish one more in flight)
        assert int(kill_at.split(":")[1]) <= _markers(out) < shards
    again = subprocess.run(_cmd(raw.root, out, 2), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _tree(out) == reference


def test_kill_point_with_one_worker_is_exact(raw_and_reference, tmp_path):
    """With one worker the main process writes the markers itself: ``shard:3`` leaves exactly 3."""
    raw, reference = raw_and_reference
    out = tmp_path / "out"
    proc = subprocess.run(_killed_at("shard:3", raw.root, out, 1), capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _markers(out) == 3
    again = subprocess.run(_cmd(raw.root, out, 1), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _tree(out) == reference


def test_orphaned_workers_exit_after_parent_is_killed(raw_and_reference, tmp_path):
    raw, _ = raw_and_reference
    proc = subprocess.Popen(_killed_at("shard:2", raw.root, tmp_path / "out", 2), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pgid = proc.pid
    assert proc.wait(timeout=300) == -signal.SIGKILL
    deadline = time.time() + 15
    while _group_alive(pgid) and time.time() < deadline:
        time.sleep(0.2)
    assert _group_alive(pgid) == []


def test_external_sigkill_mid_run(raw_and_reference, tmp_path):
    raw, reference = raw_and_reference
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(raw.root, out, 1), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    markers = out / ".work" / "markers"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if markers.is_dir() and any(markers.glob("*.json")):
            break
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (out / "manifest.json").exists(), "the run finished before the kill landed"
    again = subprocess.run(_cmd(raw.root, out, 2), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _tree(out) == reference


def test_interrupted_run_refuses_other_settings(raw_and_reference, tmp_path):
    from meit.errors import ConfigError

    raw, reference = raw_and_reference
    out = tmp_path / "out"
    proc = subprocess.run(_killed_at("shard:2", raw.root, out, 1), capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL
    with pytest.raises(ConfigError, match="interrupted run"):
        prepare_ptbxl(raw.root, out, source="records100", shard_size=SHARD, max_gap_seconds=1.0, progress=False)
    prepare_ptbxl(raw.root, out, source="records100", shard_size=SHARD, workers=2, progress=False)
    assert _tree(out) == reference
