"""`meit render`: a prepared split → PNGs + sidecars + index (bad records accounted), reruns, one record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from meit.cli import main
from meit.errors import ConfigError
from meit.render import render_paper
from meit.render.store import FORMAT, INDEX, RECORDS, SKIPPED, VERSION, load_record, read_index


def _render(*argv: str) -> int:
    return main(["render", *argv, "--no-progress"])


@pytest.fixture(scope="module")
def with_bad_records(prepared_100hz, tmp_path_factory):
    """The first 4 test rows of the prepared fixture; row 1 has a NaN, row 2 an inf (a damaged or hand-made set)."""
    import datasets

    dd = datasets.load_from_disk(str(prepared_100hz))
    test = dd["test"].select(range(4))
    ids = test["id"]

    def damage(row):
        ecg = np.asarray(row["ecg"], dtype=np.float32)
        if row["id"] == ids[1]:
            ecg[3, 50] = np.nan
        if row["id"] == ids[2]:
            ecg[0, 0] = np.inf
        row["ecg"] = ecg
        return row

    out = tmp_path_factory.mktemp("damaged") / "prepared"
    datasets.DatasetDict({"train": dd["train"].select(range(2)), "validation": dd["validation"].select(range(1)),
                          "test": test.map(damage)}).save_to_disk(str(out))
    return out, ids


def test_a_split_becomes_pngs_sidecars_and_an_index(prepared_100hz, tmp_path, capsys):
    out = tmp_path / "rendered"
    assert _render(str(prepared_100hz), "--split", "test", "--out", str(out), "--limit", "3") == 0
    index = read_index(out)
    assert index["counts"] == {"rows": 3, "rendered": 3, "skipped": 0, "skipped_by_reason": {}, "resumed": 0}
    assert index["settings"]["layout"] == "3x4" and index["settings"]["dpi"] == 100
    assert index["source"]["split"] == "test" and index["source"]["content_hash"].startswith("sha256:")
    assert (out / ".meit-output.json").is_file() and (out / SKIPPED).read_text() == ""
    import datasets

    rows = datasets.load_from_disk(str(prepared_100hz))["test"].with_format("numpy")
    for k, entry in enumerate(index["records"]):
        image, sidecar = load_record(out, entry)
        assert sidecar["id"] == entry["id"] == str(rows[k]["id"])
        assert image.shape == (sidecar["height"], sidecar["width"], 3)
        expected = render_paper(rows[k]["ecg"], int(rows[k]["fs"]))  # PNG is lossless: the very same pixels
        assert image.tobytes() == expected.image.tobytes()
        assert {b["lead"] for b in sidecar["boxes"]} >= {"I", "II", "V6"}
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["rendered"] == 3


def test_bad_records_are_skipped_and_accounted(with_bad_records, tmp_path, capsys):
    data, ids = with_bad_records
    out = tmp_path / "rendered"
    assert _render(str(data), "--out", str(out)) == 0
    index = read_index(out)
    assert index["counts"] == {"rows": 4, "rendered": 2, "skipped": 2, "skipped_by_reason": {"bad_signal": 2},
                               "resumed": 0}
    assert [e["id"] for e in index["records"]] == [ids[0], ids[3]]
    skipped = [json.loads(line) for line in (out / SKIPPED).read_text().splitlines()]
    assert [s["id"] for s in skipped] == [ids[1], ids[2]]
    assert "non-finite" in skipped[0]["detail"] and "aVR" in skipped[0]["detail"]
    assert len(list((out / "records").glob("*.png"))) == 2


def test_nothing_rendered_exits_7(with_bad_records, tmp_path, capsys):
    import datasets

    data, _ = with_bad_records
    dd = datasets.load_from_disk(str(data))
    only_bad = tmp_path / "only_bad"
    datasets.DatasetDict({"test": dd["test"].select([1, 2])}).save_to_disk(str(only_bad))
    assert _render(str(only_bad), "--out", str(tmp_path / "out")) == 7
    assert "no record rendered" in capsys.readouterr().err
    assert read_index(tmp_path / "out")["counts"]["skipped"] == 2


def test_rerun_does_nothing_other_settings_need_overwrite(prepared_100hz, tmp_path, capsys):
    out = tmp_path / "rendered"
    args = [str(prepared_100hz), "--out", str(out), "--limit", "2", "--augment", "rotation=0.5,noise=0.3"]
    assert _render(*args) == 0
    first = (out / INDEX).read_bytes()
    capsys.readouterr()
    assert _render(*args) == 0
    assert "nothing to do" in capsys.readouterr().out and (out / INDEX).read_bytes() == first
    assert _render(*args[:-1], "rotation=0.6") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _render(*args[:-1], "rotation=0.6", "--overwrite") == 0
    assert read_index(out)["settings"]["augmentation"]["rotation"] == 0.6


def test_augmentation_is_deterministic_per_seed_and_recorded(prepared_100hz, tmp_path):
    runs = {}
    for name, seed in (("a", "4"), ("b", "4"), ("c", "5")):
        out = tmp_path / name
        assert _render(str(prepared_100hz), "--out", str(out), "--limit", "2", "--dpi", "72", "--augment",
                       "all=0.4", "--seed", seed) == 0
        runs[name] = [(out / e["image"]).read_bytes() for e in read_index(out)["records"]]
    assert runs["a"] == runs["b"] and runs["a"][0] != runs["c"][0]
    sidecar = json.loads((tmp_path / "a" / read_index(tmp_path / "a")["records"][0]["sidecar"]).read_text())
    assert sidecar["augmentation"]["strengths"]["blur"] == 0.4 and "rotation" in sidecar["augmentation"]["parameters"]


def test_a_folder_meit_did_not_write_is_refused(prepared_100hz, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert _render(str(prepared_100hz), "--out", str(mine), "--limit", "1") == 2
    assert "not written by meit" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(("argv", "message"), [
    (["--augment", "twist=0.2"], "unknown effect"), (["--dpi", "5"], "dpi"),
    (["--mode", "gaf", "--augment", "blur=0.2"], "paper images"), (["--limit", "0"], "--limit"),
    (["--layout", "4x4"], "--layout '4x4' is not known; expected one of: 3x4, 6x2, 12x1"),
    (["--mode", "gasf"], "--mode 'gasf' is not known; expected one of: paper, gaf, rp, mtf"),
])
def test_bad_options_exit_2_before_any_output(prepared_100hz, tmp_path, argv, message, capsys):
    assert _render(str(prepared_100hz), "--out", str(tmp_path / "o"), *argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_data_and_record_are_exclusive(prepared_100hz, tmp_path, capsys):
    assert main(["render", "--out", str(tmp_path / "o")]) == 2
    assert main(["render", str(prepared_100hz), "--record", "x.npy", "--out", str(tmp_path / "o")]) == 2
    assert "either DATA_DIR" in capsys.readouterr().err


def test_one_record_wfdb_and_npy(synthetic_raw, prepared_100hz, tmp_path, capsys):
    record = next((synthetic_raw / "records100").rglob("*.hea"))
    assert main(["render", "--record", str(record), "--out", str(tmp_path / "one.png"), "--layout", "6x2"]) == 0
    sidecar = json.loads((tmp_path / "one.json").read_text())
    assert sidecar["layout"] == "6x2" and sidecar["fs"] == 100 and sidecar["id"] == record.stem
    assert sidecar["source"] == str(record.resolve()) and isinstance(sidecar["repairs"], list)
    assert main(["render", "--record", str(record), "--out", str(tmp_path / "one.png")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["render", "--record", str(record), "--out", str(tmp_path / "one"), "--overwrite"]) == 0

    import datasets

    row = datasets.load_from_disk(str(prepared_100hz))["test"].with_format("numpy")[0]
    array = tmp_path / "row.npy"
    np.save(array, row["ecg"])
    assert main(["render", "--record", str(array), "--fs", "100", "--out", str(tmp_path / "row.png")]) == 0
    from PIL import Image

    with Image.open(tmp_path / "row.png") as image:
        assert np.asarray(image.convert("RGB")).tobytes() == render_paper(row["ecg"], 100).image.tobytes()
    assert main(["render", "--record", str(array), "--out", str(tmp_path / "nofs.png")]) == 3  # .npy needs --fs


@pytest.mark.slow  # imports pyts (numba kernels; ~40 s without their on-disk cache)
def test_encoding_mode_writes_arrays_and_previews(prepared_100hz, tmp_path):
    out = tmp_path / "gaf"
    assert _render(str(prepared_100hz), "--out", str(out), "--limit", "2", "--mode", "gaf", "--size", "32") == 0
    index = read_index(out)
    assert index["settings"] == {"mode": "gaf", "size": 32, "seconds": 10.0, "value_range": [-1.0, 1.0],
                                 "channels": "one per lead, meit.leads order"}
    array, sidecar = load_record(out, index["records"][0])
    assert array.shape == (12, 32, 32) and array.dtype == np.float32 and sidecar["channels"][0] == "I"
    from PIL import Image

    with Image.open(out / index["records"][0]["image"]) as preview:
        assert preview.size == (4 * 32, 3 * 32)


def test_a_killed_render_goes_on_where_it_stopped(with_bad_records, tmp_path, monkeypatch):
    """Killed after its third row, a split render leaves its staging folder; the next run with the same settings
    renders only the rest, and its output equals an uninterrupted run's (bad rows accounted once)."""
    from meit.render import Augmentation
    from meit.render_jobs import split as split_job
    from meit.render_jobs.one import RenderSettings

    data, ids = with_bad_records
    settings = RenderSettings(dpi=25, augmentation=Augmentation(noise=0.3), seed=3)
    whole = split_job.render_split(data, "test", tmp_path / "whole", settings, progress=False)

    real, calls = split_job.render_one, []
    out = tmp_path / "out"
    monkeypatch.setattr(split_job, "render_one", _dies_on_call(4, real))  # not a record error: the run stops
    with pytest.raises(KeyboardInterrupt):
        split_job.render_split(data, "test", out, settings, progress=False)
    staging = split_job.staging_folder(out)
    assert not out.exists() and len((staging / split_job.JOURNAL).read_text().splitlines()) == 3
    monkeypatch.setattr(split_job, "render_one", lambda *a: (calls.append(a[3]), real(*a))[1])
    index = split_job.render_split(data, "test", out, settings, progress=False)
    assert calls == [ids[3]] and index["counts"]["resumed"] == 3 and not staging.exists()
    assert index["records"] == whole["records"] and index["counts"] == {**whole["counts"], "resumed": 3}
    assert (out / SKIPPED).read_text() == (tmp_path / "whole" / SKIPPED).read_text()
    for entry in whole["records"]:
        assert (out / entry["image"]).read_bytes() == (tmp_path / "whole" / entry["image"]).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "whole").iterdir())


def _dies_on_call(n: int, render_one):
    """``render_one`` that is interrupted on its ``n``-th call, as a kill would interrupt a run."""
    calls = []

    def render(*args):
        calls.append(args[3])
        if len(calls) == n:
            raise KeyboardInterrupt
        return render_one(*args)

    return render


def test_a_staging_folder_of_other_settings_or_a_torn_journal_line_is_handled(prepared_100hz, tmp_path,
                                                                              monkeypatch):
    from meit.render_jobs import split as split_job
    from meit.render_jobs.one import RenderSettings

    out = tmp_path / "out"
    staging = split_job.staging_folder(out)
    staging.mkdir()
    with pytest.raises(ConfigError, match=r"is not a `meit render` staging folder"):
        split_job.render_split(prepared_100hz, "test", out, RenderSettings(dpi=25), limit=2, progress=False)
    # a staging folder left by a run with other settings: started afresh
    (staging / split_job.PARTIAL).write_text(json.dumps({"settings": "another run"}))
    (staging / split_job.JOURNAL).write_text(json.dumps({"row": 0, "skipped": {"id": "x", "reason": "r"}}) + "\n")
    index = split_job.render_split(prepared_100hz, "test", out, RenderSettings(dpi=25), limit=2, progress=False)
    assert index["counts"]["resumed"] == 0 and index["counts"]["rendered"] == 2
    # a journal whose last line a kill cut short: that row is rendered again
    other = tmp_path / "other"
    first = split_job.render_split(prepared_100hz, "test", tmp_path / "ref", RenderSettings(dpi=26), limit=2,
                                   progress=False)
    staging = split_job.staging_folder(other)
    staging.mkdir()
    run = {"format": FORMAT, "version": VERSION, "source": first["source"], "settings": first["settings"], "rows": 2}
    (staging / split_job.PARTIAL).write_text(json.dumps(run) + "\n")
    (staging / RECORDS).mkdir()
    (staging / split_job.JOURNAL).write_text('{"row": 0, "ent')
    with pytest.raises(KeyboardInterrupt), monkeypatch.context() as patched:
        patched.setattr(split_job, "render_one", _dies_on_call(2, split_job.render_one))
        split_job.render_split(prepared_100hz, "test", other, RenderSettings(dpi=26), limit=2, progress=False)
    # the torn line was cut off before row 0's line was appended
    assert [json.loads(x)["row"] for x in (staging / split_job.JOURNAL).read_text().splitlines()] == [0]
    index = split_job.render_split(prepared_100hz, "test", other, RenderSettings(dpi=26), limit=2, progress=False)
    assert index["counts"]["resumed"] == 1 and index["records"] == first["records"]


def test_a_second_writer_of_the_same_output_is_refused(prepared_100hz, tmp_path):
    from filelock import FileLock

    from meit.render_jobs import split as split_job
    from meit.render_jobs.one import RenderSettings

    out = tmp_path / "out"
    staging = split_job.staging_folder(out)
    staging.mkdir()
    (staging / split_job.PARTIAL).write_text("{}\n")
    # as a running render holds it
    with FileLock(str(staging / split_job.LOCK)), pytest.raises(ConfigError, match=r"another `meit render` is writing"):
        split_job.render_split(prepared_100hz, "test", out, RenderSettings(dpi=25), limit=1, progress=False)
    assert not out.exists()
    index = split_job.render_split(prepared_100hz, "test", out, RenderSettings(dpi=25), limit=1, progress=False)
    assert index["counts"]["rendered"] == 1 and not staging.exists() and not (out / split_job.LOCK).exists()

