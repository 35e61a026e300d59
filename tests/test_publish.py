"""One publishing rule for every output: atomic, and never over a folder meit did not write.

The helper itself is tested first; then each writer that publishes a folder is pointed at a folder
holding a user's file, and must refuse it and leave the file where it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meit.cache_build import cached_build
from meit.evaluation.io import write_predictions
from meit.publish import (
    OWNER_MARKER,
    OutputError,
    atomic_write_text,
    check_replaceable,
    staged_folder,
)
from meit.training.checkpoint import COMPLETE_MARKER, complete_checkpoints, publish_checkpoint


def _foreign(path: Path) -> Path:
    """A folder the user owns: one precious file, no meit marker."""
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work")
    return path


def _intact(path: Path) -> bool:
    return sorted(p.name for p in path.iterdir()) == ["thesis.tex"] and (path / "thesis.tex").read_text() == (
        "years of work")


def _no_temporaries(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------------------------------ the helper


def test_staged_folder_publishes_and_replaces_only_its_own(tmp_path):
    final = tmp_path / "out"
    with staged_folder(final, "thing") as tmp:
        (tmp / "a.txt").write_text("1")
    assert (final / "a.txt").read_text() == "1" and (final / OWNER_MARKER).is_file()
    assert json.loads((final / OWNER_MARKER).read_text())["kind"] == "thing"
    with staged_folder(final, "thing") as tmp:  # an owned folder is replaced whole
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == [OWNER_MARKER, "b.txt"]
    assert _no_temporaries(tmp_path) == []


def test_staged_folder_keeps_the_old_output_when_the_writer_fails(tmp_path):
    final = tmp_path / "out"
    with staged_folder(final, "thing") as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"), staged_folder(final, "thing") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("disk on fire")
    assert (final / "a.txt").read_text() == "old"
    assert _no_temporaries(tmp_path) == []


def test_staged_folder_refuses_foreign_folders_and_files_before_any_work(tmp_path):
    foreign = _foreign(tmp_path / "home")
    entered = []
    with (pytest.raises(OutputError, match=r"home: is not empty and was not written by meit"),
          staged_folder(foreign, "thing")):
        entered.append(True)
    assert not entered and _intact(foreign)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="exists and is a file"):
        check_replaceable(tmp_path / "file", "thing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with staged_folder(empty, "thing") as tmp:  # an empty folder is fine: nothing to lose
        (tmp / "a.txt").write_text("1")
    assert (empty / "a.txt").is_file()


def test_a_legacy_file_proves_ownership(tmp_path):
    old = tmp_path / "artifact"
    old.mkdir()
    (old / "meta.json").write_text("{}")
    with staged_folder(old, "artifact", also_owned_if=("meta.json",)) as tmp:
        (tmp / "meta.json").write_text('{"new": 1}')
    assert json.loads((old / "meta.json").read_text()) == {"new": 1}


def test_atomic_write_text_leaves_no_partial_file(tmp_path):
    target = tmp_path / "deep" / "result.json"
    atomic_write_text(target, "{}\n")
    assert target.read_text() == "{}\n" and _no_temporaries(target.parent) == []
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_text(tmp_path / "deep", "x")


# ------------------------------------------------------------------------------------------ each writer


def test_checkpoint_publish_refuses_a_foreign_step_folder_and_replaces_its_own(tmp_path):
    root = tmp_path / "checkpoints"
    foreign = _foreign(root / "step-5")
    tmp = root / ".tmp-step-5"
    tmp.mkdir()
    with pytest.raises(OutputError, match="step-5"):
        publish_checkpoint(tmp, root / "step-5", {"epoch": 0}, keep_last=None)
    assert _intact(foreign)
    # a complete meit checkpoint of the same step (e.g. written before a crash) is replaced
    for step in (6, 6):
        tmp = root / f".tmp-step-{step}"
        tmp.mkdir()
        (tmp / "trainable.safetensors").write_bytes(b"x")
        publish_checkpoint(tmp, root / f"step-{step}", {"epoch": 1}, keep_last=None)
    assert (root / "step-6" / COMPLETE_MARKER).is_file() and complete_checkpoints(root) == [root / "step-6"]


def test_meit_model_save_refuses_a_foreign_folder(tmp_path):
    from .test_models_fusion import make_model

    model = make_model("tiny-llama", "kv")
    foreign = _foreign(tmp_path / "model")
    with pytest.raises(OutputError, match="meit model"):
        model.save_pretrained(foreign)
    assert _intact(foreign)
    saved = model.save_pretrained(tmp_path / "mine")
    model.save_pretrained(saved)  # its own earlier output is replaced
    assert (saved / OWNER_MARKER).is_file()


def test_cache_build_refuses_a_foreign_folder_and_rebuilds_a_stale_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("MEIT_CACHE", str(tmp_path / "cache"))
    foreign = _foreign(tmp_path / "cache" / "models" / "thing")
    with pytest.raises(OutputError, match="cache entry"):
        cached_build("thing", {"v": 1}, lambda out: (out / "w").write_text("1"))
    assert _intact(foreign)
    built = cached_build("other", {"v": 1}, lambda out: (out / "w").write_text("1"))
    assert cached_build("other", {"v": 1}, lambda out: pytest.fail("a complete entry is not rebuilt")) == built
    cached_build("other", {"v": 2}, lambda out: (out / "w").write_text("2"))
    assert (built / "w").read_text() == "2"
    legacy = tmp_path / "cache" / "models" / "legacy"
    legacy.mkdir()
    (legacy / ".done").write_text("")
    cached_build("legacy", {"v": 1}, lambda out: (out / "w").write_text("3"), legacy_markers=(".done",))
    assert (legacy / "w").read_text() == "3"


def test_quickstart_refuses_a_foreign_folder_even_with_fresh(tmp_path):
    from meit.quickstart import run_quickstart

    foreign = _foreign(tmp_path / "home")
    for fresh in (False, True):
        with pytest.raises(OutputError, match="quickstart run"):
            run_quickstart(foreign, fresh=fresh, progress=False)
    assert _intact(foreign)


def test_prediction_writer_refuses_a_folder_and_a_bad_record_leaves_the_old_file(tmp_path):
    with pytest.raises(OutputError, match="is a folder"):
        write_predictions(tmp_path, [])
    target = tmp_path / "predictions.jsonl"
    good = {"id": "1", "reference": "sinus rhythm", "prediction": "sinus rhythm"}
    assert write_predictions(target, [good]) == 1
    from meit.errors import DataError

    with pytest.raises(DataError, match="record 2 lacks"):
        write_predictions(target, [good, {"id": "2"}])
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == ["1"]
    assert _no_temporaries(tmp_path) == []

