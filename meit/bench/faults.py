"""How meit behaves under crashes and bad inputs: ``python -m meit.bench faults``.

Kill trials: ``meit prep ptbxl`` (2 workers), ``meit train`` (1 process, and 2 processes under
``accelerate launch`` over gloo), ``meit pretrain`` and ``meit eval`` on tiny synthetic setups are each
run once uninterrupted (the reference, whose wall time is measured), then ``--trials`` times SIGKILLed
from outside at a seeded moment uniform within that time (trial i within the i-th slice of it), rerun
the way an operator would (the same command; ``train.resume=auto`` for training) and compared with the
reference: prep by its manifest's ``content_hash`` and every file's bytes, training by every
``final/*.safetensors`` (its bytes) and the losses of ``logs/train.jsonl``, pretraining
likewise, evaluation by ``predictions.jsonl`` and ``metrics.json`` (all but the code checkout in its
provenance and generation's wall time).

Corrupted inputs: ``--cases`` seeded cases of each kind of damage (truncated ``.dat``, bad header
fields, NaN blocks, huge values, µV labelled mV, empty CSV rows and cells, missing columns) fed to
``meit prep``, and ``.npy`` variants to ``meit generate``'s reader (``meit.records.read_ecg``); each is
*clear* (a typed error, or a counted reject / named repair of that record alone with nothing else lost)
or not, and why. Prints one table; ``--out DIR`` also writes it as CSV and markdown, with every trial
and case in ``faults_detail.csv``. Sized for about 15 minutes on 2 busy CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from meit.bench.fault_inputs import KINDS, Base, make_base, run_case
from meit.bench.fault_kill import (
    KillJob,
    Reference,
    clean_env,
    eval_difference,
    free_port,
    kill_trial,
    prep_difference,
    run_command,
    run_reference,
    training_difference,
)
from meit.errors import ConfigError, MeitError
from meit.paths import cache_dir
from meit.publish import atomic_write_text, check_replaceable, mark_owned
from meit.tables import format_table, markdown_table, write_csv

PROG = "python -m meit.bench faults"
JOBS = ("prep", "train", "train-2proc", "pretrain", "eval")
#: a tiny LoRA model on 100 Hz records, as the training tests use (tiny-gpt2: random weights, no download)
TINY_TRAIN = ["model.llm=tiny-gpt2", "model.encoder=resnet1d-tiny", "model.lora.r=4", "model.lora.alpha=8",
              "model.lora.dropout=0.1", "model.max_length=96", "train.lr=3e-3", "train.lr_encoder=1e-3",
              "train.warmup_ratio=0.0", "train.trackers=[]", "train.log_every=1", "data.fs=100"]
TINY_PRETRAIN = ["ecg.encoder=resnet1d-tiny", "data.fs=100", "text.freeze_layers=4", "text.max_length=48",
                 "objective.embed_dim=32", "objective.mask_ratio=0.3", "objective.reconstruction_weight=0.5",
                 "train.batch_size=8", "train.trackers=[]", "train.log_every=1"]


def save_every(steps: int) -> int:
    """A checkpoint every quarter of the run (at least every 2 steps), so kills can land between saves."""
    return max(2, steps // 4)


class Setup:
    """Everything the kill jobs share: the synthetic raw root, its 100 Hz preparation, a recipe file."""

    def __init__(self, cache: Path, runs: Path, args: argparse.Namespace) -> None:
        self.python = [sys.executable]
        self.runs = runs
        self.args = args
        self.raw = cache / f"raw-{args.prep_records}-seed{args.seed}"
        self.data = cache / f"prepared100-{args.prep_records}-seed{args.seed}"
        self.recipe = runs / "recipe.yaml"
        self._checkpoint: Path | None = None

    def prepare(self, jobs: list[str]) -> None:
        """Synthesise (500 Hz, with 100 Hz copies) and, for the model jobs, prepare at 100 Hz; reused when complete."""
        from meit.synth.prepared import ensure_prepared_ptbxl, ensure_synthetic_raw

        ensure_synthetic_raw(self.raw, self.args.prep_records, seed=self.args.seed, workers=2, progress=False)
        if set(jobs) - {"prep"}:
            ensure_prepared_ptbxl(self.raw, self.data, seed=self.args.seed, workers=2, progress=False)
        self.recipe.write_text(f"seed: {self.args.seed}\n")

    def meit(self, *argv: str) -> list[str]:
        return [*self.python, "-m", "meit", *argv]

    def train_args(self, out: Path, rerun: bool, batch: int, steps: int) -> list[str]:
        return [str(self.recipe), "--no-progress", f"data.path={self.data}", f"output_dir={out}", *TINY_TRAIN,
                f"train.batch_size={batch}", f"train.max_steps={steps}", f"train.save_every={save_every(steps)}",
                *(["train.resume=auto"] if rerun else [])]

    def checkpoint(self, jobs: dict[str, KillJob], references: dict[str, Reference]) -> Path:
        """The artifact ``meit eval`` is killed on: the train reference's, else one trained for the purpose."""
        if "train" in references:
            return references["train"].out / "final"
        if self._checkpoint is None:
            out = self.runs / "checkpoint"
            run = run_command(jobs["train"].argv(out, False), clean_env(), self.runs / "checkpoint.log",
                              timeout=self.args.timeout)
            if run.returncode != 0:
                raise MeitError(f"training the artifact for the eval trials failed ({run.error()})")
            self._checkpoint = out / "final"
        return self._checkpoint

    def jobs(self, references: dict[str, Reference]) -> dict[str, KillJob]:
        steps, dist, pre = self.args.train_steps, self.args.dist_steps, self.args.pretrain_steps

        def prep(out: Path, rerun: bool) -> list[str]:
            return self.meit("prep", "ptbxl", str(self.raw), str(out), "--source", "records500", "--workers", "2",
                             "--shard-size", "16", "--no-progress")

        def train(out: Path, rerun: bool) -> list[str]:
            return self.meit("train", *self.train_args(out, rerun, 4, steps))

        def train_2proc(out: Path, rerun: bool) -> list[str]:
            return [*self.python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                    "--num_machines", "1", "--main_process_port", str(free_port()), "-m", "meit.cli", "train",
                    *self.train_args(out, rerun, 2, dist)]

        def pretrain(out: Path, rerun: bool) -> list[str]:
            return self.meit("pretrain", str(self.recipe), "--no-progress", "--no-eval", f"data.path={self.data}",
                             f"output_dir={out}", *TINY_PRETRAIN, f"train.max_steps={pre}",
                             f"train.save_every={save_every(pre)}", *(["train.resume=auto"] if rerun else []))

        jobs: dict[str, KillJob] = {
            "prep": KillJob("prep", f"meit prep ptbxl, {self.args.prep_records} records at 500 Hz, 2 workers",
                            prep, prep_difference),
            "train": KillJob("train", f"meit train, 1 process, {steps} steps, save_every {save_every(steps)}", train,
                             training_difference),
            "train-2proc": KillJob("train-2proc", f"meit train, accelerate launch 2 processes (gloo), "
                                   f"{dist} steps, save_every {save_every(dist)}", train_2proc, training_difference,
                                   lambda: clean_env(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")),
            "pretrain": KillJob("pretrain", f"meit pretrain, {pre} steps, save_every {save_every(pre)}", pretrain,
                                training_difference),
        }

        def evaluate(out: Path, rerun: bool) -> list[str]:
            checkpoint = self.checkpoint(jobs, references)
            return self.meit("eval", "--checkpoint", str(checkpoint), "--data", str(self.data), "--split", "test",
                             "--out", str(out), "--max-samples", str(self.args.eval_samples), "--max-new-tokens",
                             "12", "--no-meteor", "--no-progress")

        jobs["eval"] = KillJob("eval", f"meit eval, {self.args.eval_samples} test records, greedy", evaluate,
                               eval_difference)
        return jobs


class Eta:
    """Progress lines on stderr with the time left, estimated from what has been measured so far.

    A kill trial costs some multiple of its job's reference run (the killed part, then the rerun, which
    may run longer than the reference when it starts afresh): 1.5 until trials have been timed, then the
    measured multiple. A job not yet started costs the mean reference so far; a damaged input the mean case.
    """

    def __init__(self, jobs: list[str], trials: int, cases: int) -> None:
        self.start = time.monotonic()
        self.reference: dict[str, float] = {}
        self.trials_left = {job: trials for job in jobs}
        self.trial_cost: list[float] = []  # seconds of a trial / seconds of its job's reference
        self.cases_left = cases
        self.case_seconds: list[float] = []

    def trial_done(self, job: str, seconds: float) -> None:
        self.trials_left[job] -= 1
        self.trial_cost.append(seconds / max(self.reference[job], 1e-3))

    def left(self) -> float | None:
        if not self.reference and any(self.trials_left.values()):
            return None
        mean_ref = sum(self.reference.values()) / max(1, len(self.reference))
        cost = sum(self.trial_cost) / len(self.trial_cost) if self.trial_cost else 1.5
        kills = sum((cost * n + (0 if job in self.reference else 1)) * self.reference.get(job, mean_ref)
                    for job, n in self.trials_left.items())
        per_case = sum(self.case_seconds) / len(self.case_seconds) if self.case_seconds else 5.0
        return kills + self.cases_left * per_case

    def report(self, label: str) -> None:
        elapsed = time.monotonic() - self.start
        left = self.left()
        eta = "ETA –" if left is None else f"ETA {_minutes(left)}"
        print(f"[faults {_minutes(elapsed)}] {label}; {eta}", file=sys.stderr, flush=True)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def run_kills(setup: Setup, names: list[str], eta: Eta) -> list[dict[str, Any]]:
    """Reference, then the trials, job after job; one row per trial."""
    references: dict[str, Reference] = {}
    jobs = setup.jobs(references)
    rows = []
    for name in names:
        job = jobs[name]
        folder = setup.runs / "kill" / name
        references[name] = reference = run_reference(job, folder, setup.args.timeout)
        eta.reference[name] = reference.seconds
        eta.report(f"{name}: uninterrupted run {reference.seconds:.1f} s")
        for trial in range(1, setup.args.trials + 1):
            started = time.monotonic()
            row = kill_trial(job, reference, folder, trial, setup.args.trials, setup.args.seed, setup.args.timeout,
                             keep=setup.args.keep)
            row["what"] = job.what
            rows.append(row)
            eta.trial_done(name, time.monotonic() - started)
            landed = f"killed at {row['kill_at_s']} s" if row["killed"] else f"finished before {row['kill_at_s']} s"
            if row.get("resumed_from"):
                landed += f", rerun resumed from {row['resumed_from']}"
            eta.report(f"{name} trial {trial}: {landed} → {row['outcome']} {row.get('detail') or ''}".rstrip())
    return rows


def run_inputs(base_folder: Path, runs: Path, kinds: list[str], args: argparse.Namespace, eta: Eta,
               python: list[str]) -> list[dict[str, Any]]:
    """The clean base, then ``--cases`` cases of each kind; one row per case."""
    base: Base = make_base(base_folder, args.input_records, args.seed, python, args.timeout)
    rows = []
    for name in kinds:
        for case in range(1, args.cases + 1):
            started = time.monotonic()
            row = run_case(KINDS[name], case, args.seed, base, runs / "inputs", python, args.timeout)
            row["what"] = KINDS[name].what
            rows.append(row)
            eta.case_seconds.append(time.monotonic() - started)
            eta.cases_left -= 1
            if row["clear"] and not args.keep:
                shutil.rmtree(runs / "inputs" / f"{name}-{case}", ignore_errors=True)
            eta.report(f"{name} case {case}: {row['damage']} → {row['outcome']}")
    return rows


def _counted(labels: list[str]) -> str:
    return ", ".join(f"{label} ×{n}" for label, n in Counter(labels).most_common())


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per job or kind of damage: how many, how many came out right, and the first other outcome."""
    summary = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        if kind.startswith("kill:"):
            ok = [r for r in mine if r["outcome"] == "identical"]
            first = next((r for r in mine if r["outcome"] != "identical"), None)
            notes = sorted({r["note"] for r in mine if r.get("note")})
            summary.append({
                "kind": kind, "what": mine[0]["what"], "n": len(mine), "killed": sum(bool(r["killed"]) for r in mine),
                "resumed": sum(bool(r.get("resumed_from")) for r in mine), "ok": len(ok),
                "differing": sum(r["outcome"] == "differing" for r in mine),
                "errors": sum(r["outcome"].endswith("error") for r in mine), "other": len(mine) - len(ok),
                "outcomes": _counted([r["outcome"] for r in mine]),
                "first_problem": "" if first is None else f"trial {first['case']}: {first['detail']}",
                "notes": "; ".join(notes),
            })
        else:
            ok = [r for r in mine if r["clear"]]
            first = next((r for r in mine if not r["clear"]), None)
            summary.append({
                "kind": kind, "what": mine[0]["what"], "n": len(mine), "ok": len(ok), "other": len(mine) - len(ok),
                "outcomes": _counted([r["outcome"] for r in mine]),
                "first_problem": "" if first is None else f"case {first['case']}: {first['damage']} → "
                                                          f"{first['outcome']}: {first['detail']}",
            })
    return summary


COLUMNS = [("kind", "job / case kind"), ("n", "trials/cases"), ("killed", "killed"), ("resumed", "resumed"),
           ("ok", "identical/clear"),
           ("differing", "differing"), ("errors", "errors"), ("other", "other"), ("outcomes", "outcomes")]


def write_results(out: Path, command: str, summary: list[dict[str, Any]], detail: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(summary, out / "faults.csv")
    write_csv(detail, out / "faults_detail.csv")
    table = markdown_table([h for _, h in COLUMNS], ([r.get(k) for k, _ in COLUMNS] for r in summary), left=1)
    problems = [f"- {r['kind']}: {r['first_problem']}" for r in summary if r["first_problem"]]
    text = [f"# {PROG}", "", f"```\n{command}\n```", "", table]
    if problems:
        text += ["", "First problem of each row that is not all identical/clear:", "", *problems]
    notes = [f"- {r['kind']}: {r['notes']}" for r in summary if r.get("notes")]
    if notes:
        text += ["", "Notes:", "", *notes]
    atomic_write_text(out / "faults.md", "\n".join(text) + "\n")


def _names(text: str, known: list[str] | tuple[str, ...], option: str) -> list[str]:
    if text == "none":
        return []
    if text == "all":
        return list(known)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"{option}: unknown {', '.join(unknown)}; known: {', '.join(known)}, or all / none")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3, help="kill trials per job (3)")
    parser.add_argument("--cases", type=int, default=3, help="cases per kind of corrupted input (3)")
    parser.add_argument("--seed", type=int, default=0, help="seeds kill times, damage and the synthetic data")
    parser.add_argument("--jobs", default="all", help=f"comma-separated among {', '.join(JOBS)}; all or none")
    parser.add_argument("--inputs", default="all", help="comma-separated kinds of damage (see --list-inputs); "
                        "all or none")
    parser.add_argument("--list-inputs", action="store_true", help="list the kinds of damage and exit")
    parser.add_argument("--prep-records", type=int, default=1000, help="synthetic records of the kill setup; "
                        "enough that most prep kills land after start-up (1000)")
    parser.add_argument("--input-records", type=int, default=12, help="synthetic records of each damaged copy (12)")
    parser.add_argument("--train-steps", type=int, default=16, help="steps of the 1-process training (16)")
    parser.add_argument("--dist-steps", type=int, default=40, help="steps of the 2-process training (40: its steps "
                        "are cheap, and a run of a few would be all start-up)")
    parser.add_argument("--pretrain-steps", type=int, default=4, help="steps of the pretraining (4)")
    parser.add_argument("--eval-samples", type=int, default=8, help="test records `meit eval` generates for (8)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a run counts as hung (900)")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: $MEIT_CACHE/bench/faults)")
    parser.add_argument("--keep", action="store_true", help="keep the output of every trial and case")
    parser.add_argument("--out", type=Path, default=None, help="write faults.csv, faults.md, faults_detail.csv here")
    args = parser.parse_args(argv)
    if args.list_inputs:
        width = max(map(len, KINDS))
        print("\n".join(f"  {k.name:<{width}}  {k.target:<4}  {k.what}" for k in KINDS.values()))
        return 0
    jobs = _names(args.jobs, JOBS, "--jobs")
    kinds = _names(args.inputs, list(KINDS), "--inputs")
    if args.trials < 1 or args.cases < 1:
        parser.error("--trials and --cases must be at least 1")
    command = " ".join([PROG, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])

    cache = args.dir or cache_dir("bench", "faults")
    runs = check_replaceable(cache / "runs", "fault-injection work folder")
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    mark_owned(runs, "fault-injection work folder")
    eta = Eta(jobs, args.trials, len(kinds) * args.cases)
    eta.report(f"{len(jobs)} jobs × {args.trials} kill trials, {len(kinds)} kinds × {args.cases} damaged inputs; "
               f"work folder {runs}")
    rows: list[dict[str, Any]] = []
    if jobs:
        setup = Setup(cache, runs, args)
        setup.prepare(jobs)
        eta.report(f"synthetic data ready ({setup.raw})")
        rows += run_kills(setup, jobs, eta)
    if kinds:
        rows += run_inputs(cache / f"inputs-{args.input_records}-seed{args.seed}", runs, kinds, args, eta,
                           [sys.executable])
    summary = summarise(rows)
    print(f"{command}\n")
    print(format_table(summary, COLUMNS, left=1))
    problems = [f"  {r['kind']}: {r['first_problem']}" for r in summary if r["first_problem"]]
    if problems:
        print("\nfirst problem per row:\n" + "\n".join(problems))
    notes = [f"  {r['kind']}: {r['notes']}" for r in summary if r.get("notes")]
    if notes:
        print("\nnotes:\n" + "\n".join(notes))
    if args.out:
        write_results(args.out, command, summary, rows)
        print(f"\nwrote {args.out / 'faults.csv'}, {args.out / 'faults.md'}, {args.out / 'faults_detail.csv'}")
    return 0
