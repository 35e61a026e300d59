"""`meit prep …`: help, a real run, and exit codes for bad input."""

from __future__ import annotations

import json

import datasets
import pytest

from meit.cli import main
from tests.raw_fixtures import make_mimic, make_ptbxl


@pytest.mark.parametrize("source", ["ptbxl", "mimic-iv-ecg"])
def test_source_help(source, capsys):
    with pytest.raises(SystemExit) as info:
        main(["prep", source, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--fs", "--workers", "--seed", "--missing-lead", "--max-gap"):
        assert option in out


def test_prep_without_source_prints_help(capsys):
    assert main(["prep"]) == 2
    assert "ptbxl" in capsys.readouterr().out


def test_ptbxl_run(tmp_path, capsys):
    raw = make_ptbxl(tmp_path / "raw", 14, fs=100)
    out = tmp_path / "out"
    code = main(["prep", "ptbxl", str(raw.root), str(out), "--source", "records100", "--workers", "1",
                 "--no-progress", "--keep-columns", "heart_rate"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rejected"] == len(raw.rejected)
    dd = datasets.load_from_disk(str(out))
    assert "heart_rate" in dd["train"].column_names and "findings" not in dd["train"].column_names


def test_mimic_run_with_ratios(tmp_path, capsys):
    raw = make_mimic(tmp_path / "raw", 6, fs=100, quirks=False, patients=6)
    out = tmp_path / "out"
    code = main(["prep", "mimic-iv-ecg", str(raw.root), str(out), "--fs", "100", "--workers", "1",
                 "--ratios", "0.5,0.25,0.25", "--seed", "3", "--no-progress"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split"]["ratios"] == [0.5, 0.25, 0.25] and manifest["split"]["seed"] == 3
    assert sum(manifest["counts"].values()) == 6


def test_exit_codes(tmp_path, capsys):
    assert main(["prep", "ptbxl", str(tmp_path / "missing"), str(tmp_path / "o"), "--no-progress"]) == 3
    assert "not a directory" in capsys.readouterr().err
    raw = make_mimic(tmp_path / "raw", 2, fs=100, quirks=False)
    assert main(["prep", "mimic-iv-ecg", str(raw.root), str(tmp_path / "o"), "--ratios", "1,2",
                 "--no-progress"]) == 2
    assert "--ratios" in capsys.readouterr().err
    bad_keep = ["prep", "ptbxl", str(make_ptbxl(tmp_path / "p", 2, quirks=False).root), str(tmp_path / "o2"),
                "--source", "records100", "--keep-columns", "no_such_column", "--no-progress"]
    assert main(bad_keep) == 2
    assert "no_such_column" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [["--seconds", "0"], ["--min-seconds", "20"], ["--max-gap", "-1"], ["--fs", "0"], ["--workers", "0"],
     ["--report", "orignal"]],
)
def test_bad_options_exit_2(tmp_path, extra, capsys):
    raw = make_ptbxl(tmp_path / "raw", 2, fs=100, quirks=False)
    code = main(["prep", "ptbxl", str(raw.root), str(tmp_path / "o"), "--source", "records100",
                 "--no-progress", *extra])
    assert code == 2, capsys.readouterr().err


def test_every_record_rejected_exits_7_after_writing_the_manifest(tmp_path, capsys):
    from meit.cli.prep_cmd import EXIT_NOTHING_KEPT

    raw = make_ptbxl(tmp_path / "raw", 3, fs=100, quirks=False)
    for dat in (raw.root / "records100").rglob("*.dat"):
        dat.unlink()
    out = tmp_path / "out"
    code = main(["prep", "ptbxl", str(raw.root), str(out), "--source", "records100", "--workers", "1",
                 "--no-progress"])
    assert code == EXIT_NOTHING_KEPT == 7
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rejected_by_reason"] == {"missing_dat": 3} and sum(manifest["counts"].values()) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["rejected"] == 3  # the summary is printed as on success
    assert "no record was kept" in captured.err and "missing_dat 3" in captured.err
    # the finished folder gives the same answer when the command is run again
    assert main(["prep", "ptbxl", str(raw.root), str(out), "--source", "records100", "--no-progress"]) == 7


def test_unexpected_errors_exit_8_and_are_named(tmp_path, capsys, monkeypatch):
    import data_prep.items
    from meit.cli.prep_cmd import EXIT_UNEXPECTED_ERRORS

    real_read = data_prep.items.read_signal

    def flaky(path, policy):
        if path.endswith("00002_lr"):
            raise RuntimeError("a bug in the reader")
        return real_read(path, policy)

    monkeypatch.setattr(data_prep.items, "read_signal", flaky)
    raw = make_ptbxl(tmp_path / "raw", 4, fs=100, quirks=False)
    out = tmp_path / "out"
    code = main(["prep", "ptbxl", str(raw.root), str(out), "--source", "records100", "--workers", "1",
                 "--no-progress"])
    assert code == EXIT_UNEXPECTED_ERRORS == 8
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rejected_by_reason"] == {"unexpected_error": 1} and sum(manifest["counts"].values()) == 3
    err = capsys.readouterr().err
    assert "1 of 4 records failed with an unexpected error" in err
    assert "2: RuntimeError: a bug in the reader" in err and "rejected.jsonl" in err


def test_new_repair_options_reach_the_manifest(tmp_path, capsys):
    raw = make_ptbxl(tmp_path / "raw", 2, fs=100, quirks=False)
    out = tmp_path / "out"
    assert main(["prep", "ptbxl", str(raw.root), str(out), "--source", "records100", "--missing-lead", "zero",
                 "--max-blanked", "0.25", "--no-progress"]) == 0
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["missing_lead"] == "zero" and config["max_blanked_fraction"] == 0.25
    assert main(["prep", "ptbxl", str(raw.root), str(tmp_path / "o2"), "--source", "records100",
                 "--max-blanked", "1.5", "--no-progress"]) == 2
    assert "max_blanked_fraction" in capsys.readouterr().err
