"""The fault-injection bench itself: a real kill trial and real damaged inputs, and proof that it reports
what is wrong when something is (a rerun that writes other bytes, a record kept without a word, a record
lost, a crash) instead of passing everything."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from meit.bench import faults
from meit.bench.fault_inputs import Base, Damage, InputKind, _prep_failure, classify_npy, make_base, run_case
from meit.bench.fault_kill import (
    Reference,
    Run,
    json_difference,
    kill_time,
    kill_trial,
    resumed_from,
    safetensors_digest,
)

SEED = 0
PREP_RECORDS = 60
INPUT_RECORDS = 12


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One run of the bench: a kill trial of prep and two damaged inputs, with its tables written."""
    work = tmp_path_factory.mktemp("faults")
    code = faults.main(["--jobs", "prep", "--trials", "1", "--inputs", "truncated_dat,npy_nan_block", "--cases", "1",
                        "--prep-records", str(PREP_RECORDS), "--input-records", str(INPUT_RECORDS),
                        "--seed", str(SEED), "--timeout", "300", "--dir", str(work), "--out", str(work / "results")])
    assert code == 0
    with open(work / "results" / "faults_detail.csv", newline="") as handle:
        detail = {row["kind"]: row for row in csv.DictReader(handle)}
    return work, detail


def test_one_prep_kill_trial_and_two_damaged_inputs(bench):
    work, detail = bench
    assert set(detail) == {"kill:prep", "input:truncated_dat", "input:npy_nan_block"}
    trial = detail["kill:prep"]
    assert trial["outcome"] == "identical", trial
    assert 0 <= float(trial["kill_at_s"]) < float(trial["reference_s"])
    assert detail["input:truncated_dat"]["outcome"] == "rejected: truncated_dat"
    assert detail["input:npy_nan_block"]["outcome"].startswith(("repaired: ", "typed error ("))
    assert all(detail[k]["clear"] == "True" for k in ("input:truncated_dat", "input:npy_nan_block"))
    table = (work / "results" / "faults.md").read_text()
    assert "python -m meit.bench faults --jobs prep --trials 1" in table
    assert "| kill:prep | 1 |" in table and "| input:truncated_dat | 1 |" in table
    with open(work / "results" / "faults.csv", newline="") as handle:
        summary = {row["kind"]: row for row in csv.DictReader(handle)}
    assert summary["kill:prep"]["ok"] == "1" and summary["kill:prep"]["other"] == "0"


def _prep_job(work: Path):
    args = argparse.Namespace(prep_records=PREP_RECORDS, seed=SEED, train_steps=6, dist_steps=8, pretrain_steps=4,
                              eval_samples=8, timeout=300.0)
    setup = faults.Setup(work, work / "runs", args)
    return setup.jobs({})["prep"]


def _landing_seed(job_name: str) -> int:
    """A seed whose kill lands in the middle of the run, so that the trial has a rerun to judge."""
    return next(s for s in range(1000) if 0.3 < kill_time(s, job_name, 1, 1, 1.0) < 0.6)


def test_a_rerun_that_writes_other_bytes_is_reported_as_differing(bench, tmp_path):
    work, detail = bench
    job = _prep_job(work)
    reference = Reference(work / "runs" / "kill" / "prep" / "reference", float(detail["kill:prep"]["reference_s"]))
    assert (reference.out / "manifest.json").is_file()

    def planted(out: Path, rerun: bool) -> list[str]:
        argv = job.argv(out, rerun)
        if not rerun:
            return argv
        script = ("import pathlib, sys\nfrom meit.cli import main\n"
                  f"code = main({argv[3:]!r})\n"
                  f"pathlib.Path({str(out)!r}, 'rejected.jsonl').write_text('planted\\n')\nsys.exit(code)\n")
        return [sys.executable, "-c", script]

    seed = _landing_seed(job.name)
    row = kill_trial(dataclasses.replace(job, argv=planted), reference, tmp_path / "planted", 1, 1, seed, 300)
    assert row["killed"], row
    assert row["outcome"] == "differing" and row["detail"] == "rejected.jsonl: contents differ", row

    failing = dataclasses.replace(job, argv=lambda out, rerun: [sys.executable, "-c", "raise SystemExit(5)"]
                                  if rerun else job.argv(out, rerun))
    row = kill_trial(failing, reference, tmp_path / "failing", 1, 1, seed, 300)
    assert row["killed"] and row["outcome"] == "rerun_error" and row["detail"].startswith("exit 5"), row


def test_kill_times_are_seeded_and_spread_over_the_run():
    times = [kill_time(SEED, "train", trial, 3, 30.0) for trial in (1, 2, 3)]
    assert times == [kill_time(SEED, "train", trial, 3, 30.0) for trial in (1, 2, 3)]
    assert 0 <= times[0] < 10 <= times[1] < 20 <= times[2] < 30


def test_comparisons_name_the_first_difference(tmp_path):
    assert json_difference({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 3]}}) == "b.c[1]: 2 ≠ 3"
    assert json_difference({"a": 1}, {"a": 1}) is None
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.ones(3)}, str(tmp_path / "a.safetensors"), metadata={"x": "1", "y": "2"})
    save_file({"w": torch.ones(3)}, str(tmp_path / "b.safetensors"), metadata={"y": "2", "x": "1"})
    save_file({"w": torch.zeros(3)}, str(tmp_path / "c.safetensors"), metadata={"x": "1", "y": "2"})
    log = tmp_path / "rerun.log"
    log.write_text("04:40:27 INFO meit.training.loop: resumed from /x/run/checkpoints/step-4 (step 4, epoch 0)\n")
    assert resumed_from(log) == "step-4"
    log.write_text("INFO data_prep.writer: resuming: 240 of 400 records already prepared\n")
    assert resumed_from(log) == "240 of 400"
    log.write_text("trained 6 steps\n")
    assert resumed_from(log) == ""

    digest = safetensors_digest(tmp_path / "a.safetensors")
    assert digest == safetensors_digest(tmp_path / "b.safetensors") != safetensors_digest(tmp_path / "c.safetensors")


@pytest.fixture(scope="module")
def base(bench) -> Base:
    work, _ = bench
    return make_base(work / f"inputs-{INPUT_RECORDS}-seed{SEED}", INPUT_RECORDS, SEED, [sys.executable], 300)


def test_bad_data_kept_without_a_word_is_not_clear(base, tmp_path):
    """A 'damage' that changes nothing leaves the record kept without a note: that is what silent
    acceptance looks like to the classifier, and it must say so."""
    target = sorted(base.records, key=int)[0]
    kind = InputKind("planted_noop", "prep", "record", "nothing", lambda root, rng, b: Damage(target, "nothing"))
    row = run_case(kind, 1, SEED, base, tmp_path, [sys.executable], 300)
    assert row["exit"] == 0 and row["outcome"] == "kept, no note" and row["clear"] is False, row


def test_a_lost_record_is_not_clear(base, tmp_path):
    """Another record's row removed from the table: the bench must notice it is gone."""
    target, victim = sorted(base.records, key=int)[:2]

    def drop_victim(root: Path, rng: np.random.Generator, b: Base) -> Damage:
        table = root / "ptbxl_database.csv"
        with open(table, newline="") as handle:
            rows = list(csv.reader(handle))
        at = rows[0].index("ecg_id")
        with open(table, "w", newline="") as handle:
            csv.writer(handle).writerows([r for r in rows if r[at] != victim])
        return Damage(target, f"record {victim} silently dropped")

    kind = InputKind("planted_loss", "prep", "record", "a record lost", drop_victim)
    row = run_case(kind, 1, SEED, base, tmp_path, [sys.executable], 300)
    assert row["outcome"] == "another record lost" and victim in row["detail"] and not row["clear"], row


def test_crashes_are_not_clear(base, tmp_path, monkeypatch):
    log = tmp_path / "prep.log"
    log.write_text("Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")
    record_kind = InputKind("k", "prep", "row", "", lambda *a: Damage(None, ""))
    crashed = _prep_failure(record_kind, Run(1, 1.0, False, log), tmp_path)
    assert not crashed.clear and crashed.outcome == "crash (exit 1)" and "RuntimeError: boom" in crashed.detail
    log.write_text("meit prep: error: ptbxl_database.csv: missing column(s) ['report']\n")
    typed = _prep_failure(record_kind, Run(3, 1.0, False, log), tmp_path)
    assert typed.clear and typed.outcome == "typed error (exit 3)"
    stopped = _prep_failure(dataclasses.replace(record_kind, scope="record"), Run(3, 1.0, False, log), tmp_path)
    assert not stopped.clear and stopped.outcome == "run stopped (exit 3)"

    import meit.records

    def broken(*args, **kwargs):
        raise RuntimeError("reader blew up")

    monkeypatch.setattr(meit.records, "read_ecg", broken)
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((12, 100)))
    result = classify_npy(record_kind, Damage("1", ""), npy, np.zeros((12, 100), dtype=np.float32), 100)
    assert not result.clear and result.outcome == "crash (RuntimeError)"


def test_registered_and_listed(capsys):
    from meit.bench.registry import BENCHMARKS

    assert BENCHMARKS["faults"].module == "meit.bench.faults"
    assert faults.main(["--list-inputs"]) == 0
    listed = capsys.readouterr().out
    assert "truncated_dat" in listed and "npy_wrong_shape" in listed


def test_eval_comparison_ignores_timing_and_checkout_but_not_scores(tmp_path):
    """Generation's wall time changes with the machine's load: a rerun is not 'differing' for it."""
    import json

    from meit.bench.fault_kill import eval_difference

    def write(folder: Path, reports_per_s: float, bleu: float, code: str) -> Path:
        folder.mkdir()
        (folder / "predictions.jsonl").write_text('{"id": "1", "prediction": "sinus rhythm"}\n')
        metrics = {"bleu_4": bleu, "generation": {"seconds": 8 / reports_per_s, "batch_size": 8,
                                                  "reports_per_s": reports_per_s},
                   "provenance": {"code": code, "n": 1}}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        return folder

    reference = write(tmp_path / "a", 0.631, 0.25, "abc")
    assert eval_difference(reference, write(tmp_path / "b", 0.803, 0.25, "abc-dirty")) is None
    assert eval_difference(reference, write(tmp_path / "c", 0.631, 0.26, "abc")) == "metrics.json: bleu_4: 0.25 ≠ 0.26"
