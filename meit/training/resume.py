"""Which checkpoint a run may continue from, so that two runs are never mixed in one output folder.

Every checkpoint records the identity of the run that wrote it (``progress.json``, key ``run``): the
meit version, the number of processes, and the recipe settings that decide what is trained, with
their sha256. Before the first step (decided on rank 0, the same answer given to every rank):

* a fresh run (``train.resume`` unset) refuses an ``OUTPUT_DIR/checkpoints`` that already holds complete
  checkpoints: its own would be pruned among the old ones by step number, and ``resume=auto`` would
  later continue whichever run reached the higher step;
* ``train.resume=auto`` or a path refuses a checkpoint of another run (naming what differs), and a
  path older than checkpoints already in ``OUTPUT_DIR/checkpoints`` (they belong to an abandoned branch).

The JSONL log is then cut back to the step the run starts from, so a resumed run's log equals an
uninterrupted one's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import meit
from meit.errors import TrainingError
from meit.publish import atomic_write_text
from meit.training.checkpoint import checkpoint_step, complete_checkpoints, find_resume_checkpoint, read_progress

#: Recipe keys (and sections) that may change between a run and its resume: where the run is written,
#: how it is resumed, logged, checkpointed and evaluated. None of them changes the trained weights:
#: evaluation runs with the training RNG streams set aside (``loop.preserved_rng``, tested). Everything
#: else — data, model, schedule, ``train.max_steps`` and ``train.epochs`` (extending a run would change
#: its learning-rate schedule: continue with ``train.init_from`` instead) — is part of the identity.
RESUMABLE_KEYS: tuple[str, ...] = (
    "output_dir", "train.resume", "train.log_every", "train.trackers", "train.save_every", "train.keep_last",
    "train.eval_every", "train.sample_reports", "data.eval_split", "data.max_eval_samples",
    "eval",
)

T = TypeVar("T")


def _flatten(prefix: str, node: Any, out: dict[str, Any]) -> None:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            _flatten(f"{prefix}{key}.", value, out)
    else:
        out[prefix.rstrip(".")] = node


def run_settings(recipe: Any, exclude: tuple[str, ...] = RESUMABLE_KEYS) -> dict[str, Any]:
    """A pydantic recipe as ``{"section.key": JSON value}`` without the keys a resume may change."""
    flat: dict[str, Any] = {}
    _flatten("", recipe.model_dump(mode="json"), flat)
    return {k: v for k, v in sorted(flat.items())
            if not any(k == e or k.startswith(f"{e}.") for e in exclude)}


def run_identity(settings: Mapping[str, Any] | None, world_size: int) -> dict[str, Any]:
    """What a checkpoint records about its run (``settings`` from :func:`run_settings`)."""
    clean = json.loads(json.dumps(dict(settings or {}), sort_keys=True))  # JSON types, as read back
    digest = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()
    return {"meit_version": meit.__version__, "world_size": world_size, "recipe_sha256": digest, "settings": clean}


def identity_differences(saved: Mapping[str, Any], current: Mapping[str, Any], limit: int = 8) -> list[str]:
    """What makes ``saved`` another run than ``current``, in words (empty: the same run)."""
    out = []
    if saved.get("world_size") != current["world_size"]:
        out.append(f"written by {saved.get('world_size')} process(es), this run has {current['world_size']}")
    if saved.get("meit_version") != current["meit_version"]:
        out.append(f"written by meit {saved.get('meit_version')}, this is meit {current['meit_version']}")
    if saved.get("recipe_sha256") != current["recipe_sha256"]:
        before, now = saved.get("settings") or {}, current["settings"]
        keys = [k for k in sorted(set(before) | set(now)) if before.get(k, "<unset>") != now.get(k, "<unset>")]
        out += [f"{k}: {before.get(k, '<unset>')!r} in the checkpoint, {now.get(k, '<unset>')!r} now"
                for k in keys[:limit]]
        if len(keys) > limit:
            out.append(f"… {len(keys) - limit} more keys")
        if not keys:
            out.append("recipe settings hash differs")
    return out


def check_same_run(path: Path, identity: Mapping[str, Any], resume: str | None) -> dict[str, Any]:
    """The progress of checkpoint ``path``, or a TrainingError when another run wrote it."""
    progress = read_progress(path)
    saved = progress.get("run")
    if not isinstance(saved, dict):
        raise TrainingError(
            f"train.resume={resume}: checkpoint {path} records no run identity (written by an older meit), so it "
            "cannot be checked against this recipe; choose a fresh output_dir and train again")
    differences = identity_differences(saved, identity)
    if differences:
        raise TrainingError(
            f"train.resume={resume}: checkpoint {path} belongs to another run ({'; '.join(differences)}). Resume only "
            "with the recipe (see RESUMABLE_KEYS in meit/training/resume.py for what may change), world size and "
            "meit version that wrote it, or set train.resume=null and choose a fresh output_dir")
    return progress


def choose_checkpoint(output_dir: Path, resume: str | None, identity: Mapping[str, Any]) -> Path | None:
    """The checkpoint this run continues from (None: start at step 0), or a TrainingError (see the module)."""
    root = output_dir / "checkpoints"
    existing = complete_checkpoints(root)
    if resume is None:
        if existing:
            raise TrainingError(
                f"{root} already holds checkpoints of an earlier run ({', '.join(p.name for p in existing)}); a new "
                "run there would mix its checkpoints and log with them. Continue that run with train.resume=auto, "
                "or choose a fresh output_dir")
        return None
    target = find_resume_checkpoint(output_dir, resume)
    if target is None:
        return None
    step = check_same_run(target, identity, resume)["step"]
    newer = [p for p in existing if (checkpoint_step(p) or 0) > step]
    if newer:
        raise TrainingError(
            f"train.resume={resume} continues from step {step}, but {root} holds later checkpoints "
            f"({', '.join(p.name for p in newer)}) that this run would be mixed with: move them out of {root}, "
            "resume from the newest (train.resume=auto), or choose a fresh output_dir")
    for other in existing:
        if other.resolve() != target.resolve():
            check_same_run(other, identity, resume)
    return target


def decided_on_main(accelerator: Any, decide: Callable[[], T]) -> T:
    """Run ``decide`` on rank 0 only and give every rank its result, or raise its TrainingError on every rank.

    A decision taken on each rank separately could differ (files appearing meanwhile), and a rank that
    raised alone would leave the others waiting in their next collective.
    """
    box: list[Any] = [None]
    failure: Exception | None = None
    if accelerator.is_main_process:
        try:
            box = [("ok", decide())]
        except Exception as err:  # whatever it is, the other ranks must hear of it or they wait forever
            failure = err
            box = [("error", str(err) if isinstance(err, TrainingError) else
                    f"rank 0 failed while checking the checkpoints: {type(err).__name__}: {err}")]
    if accelerator.num_processes > 1:
        import torch.distributed as dist

        dist.broadcast_object_list(box, src=0)
    if failure is not None:
        raise failure
    kind, value = box[0]
    if kind == "error":
        raise TrainingError(value)
    return value


def cut_log(path: Path, step: int) -> None:
    """Keep only the records of steps ``<= step`` in the JSONL log ``path`` (all of them gone for step 0).

    A run killed after its last checkpoint logged steps that its resume will log again.
    """
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by the kill
        if isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))
