"""Reports checked against the waveform (meit.verify): statements read, verdicts and their tolerances, the
`meit verify` command, and corpus figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from meit.cli import main
from meit.errors import DataError
from meit.leads import CANONICAL_LEADS
from meit.measure import QUANTITIES, EcgMeasurements, Measurement
from meit.measure.measurements import missing
from meit.synth import make_record
from meit.verify import read_statements, verify_ecg, verify_report
from meit.verify.corpus import VERDICTS_FILE, describe, verify_corpus


def fake(**values) -> EcgMeasurements:
    """Measurements with the given values (a number, or a dict of per-lead values); the rest not measured."""
    out = {name: missing(unit, "not_in_this_test") for name, unit in QUANTITIES.items()}
    for name, value in values.items():
        if isinstance(value, dict):
            out[name] = Measurement(max(value.values(), key=abs), QUANTITIES[name], tuple(value), ((1.0, 1.1),),
                                    per_lead=value)
        else:
            out[name] = Measurement(float(value), QUANTITIES[name], ("II",), ((0.5, 9.5),))
    return EcgMeasurements(500, 10.0, dict.fromkeys(CANONICAL_LEADS, "ok"), (0.5, 9.5), out)


def verdicts(report: str, m: EcgMeasurements) -> dict[str, str]:
    return {("not " if v.statement.negated else "") + v.statement.finding: v.verdict
            for v in verify_report(report, m).verdicts}


# -- statements ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("Sinus rhythm, rate 85 bpm.", {"heart_rate": 85}),
    ("Sinus tachycardia, 121/min.", {"heart_rate": 121}),
    ("Atrial fibrillation with a ventricular rate of 67 bpm.", {"heart_rate": 67}),
    ("Atrial flutter, atrial rate 280, ventricular rate 140 bpm.", {"heart_rate": 140}),
    ("PR 167 ms, QRS 90 ms, QT/QTc 405/428 ms.", {"pr_ms": 167, "qrs_ms": 90, "qt_ms": 405, "qtc_ms": 428}),
    ("Intervals: PR 160, QRS 90, QT 380, QTc 410 ms.", {"pr_ms": 160, "qrs_ms": 90, "qt_ms": 380, "qtc_ms": 410}),
    ("First degree AV block (PR 0.22 s).", {"pr_ms": 220}),
    ("Prolonged PR interval of 272 ms.", {"pr_ms": 272}),
    ("Wide QRS complex (126 ms) with right bundle branch block morphology.", {"qrs_ms": 126}),
    ("QRS axis -10 degrees.", {"axis_deg": -10}),
    ("Left axis deviation (QRS axis −82°), consistent with LAFB.", {"axis_deg": -82}),
    ("Marked left axis deviation (-60 degrees).", {"axis_deg": -60}),
    ("QTc 440 ms.", {"qtc_ms": 440}),
])
def test_stated_numbers_are_read(text, expected):
    numbers = {s.finding: s.value for s in read_statements(text) if s.is_number}
    assert numbers == expected


def test_findings_are_the_extractors_and_negations_are_kept():
    statements = read_statements("Sinus bradycardia at 48 bpm. No ST elevation. ST depression in leads V4-V6. "
                                 "Old inferior infarction.")
    by_finding = {(s.finding, s.negated): s for s in statements}
    assert ("sinus_brady", False) in by_finding and ("rate_brady", False) in by_finding
    assert not by_finding[("rate_brady", False)].inferred  # "bradycardia" says it
    assert next(s for s in read_statements("Rate 70.") if s.finding == "rate_normal").inferred  # from the number
    assert by_finding[("st_elevation", True)].text == "st elevation"  # the words; `negated` says "no"
    assert by_finding[("st_depression", False)].leads == ("V4", "V5", "V6")
    assert ("infarct_inferior", False) in by_finding
    assert [s.finding for s in statements if s.is_number] == ["heart_rate"]


def test_st_leads_come_from_the_sentence_or_the_territory():
    leads = {s.finding: s.leads for s in read_statements("ST elevation of up to 0.2 mV in leads II, III and aVF. "
                                                         "Anterior ST depression.")}
    assert leads == {"st_elevation": ("II", "III", "aVF"), "st_depression": ("V1", "V2", "V3", "V4")}


# -- rules and tolerances -------------------------------------------------------------------------------------


def test_stated_numbers_are_judged_within_their_tolerances():
    m = fake(heart_rate=80, pr_ms=160, qrs_ms=100, qt_ms=400, qtc_ms=440, axis_deg=-170)
    assert verdicts("Rate 88 bpm.", m)["heart_rate"] == "supported"  # +10 %
    assert verdicts("Rate 89 bpm.", m)["heart_rate"] == "contradicted"
    assert verdicts("PR 180 ms.", m)["pr_ms"] == "supported" and verdicts("PR 181 ms.", m)["pr_ms"] == "contradicted"
    assert verdicts("QRS 79 ms.", m)["qrs_ms"] == "contradicted"
    assert verdicts("QTc 462 ms.", m)["qtc_ms"] == "supported"  # 20 ms / sqrt(0.75 s) = 23 ms at 80 bpm
    assert verdicts("QTc 462 ms.", fake(heart_rate=60, qtc_ms=440))["qtc_ms"] == "contradicted"
    assert verdicts("QRS axis +170 degrees.", m)["axis_deg"] == "supported"  # 20° apart across ±180
    assert verdicts("QRS axis +120 degrees.", m)["axis_deg"] == "contradicted"


def test_class_boundaries_have_a_margin_and_negation_flips():
    assert verdicts("Sinus bradycardia.", fake(heart_rate=62, p_wave=1, rr_irregularity=0.01))["sinus_brady"] \
        == "supported"  # within 60 × 1.05
    assert verdicts("Sinus bradycardia.", fake(heart_rate=64, p_wave=1, rr_irregularity=0.01))["sinus_brady"] \
        == "contradicted"
    assert verdicts("First degree AV block.", fake(pr_ms=195))["avb1"] == "supported"
    assert verdicts("First degree AV block.", fake(pr_ms=185))["avb1"] == "contradicted"
    assert verdicts("Left axis deviation.", fake(axis_deg=-20))["axis_left"] == "supported"
    assert verdicts("Left axis deviation.", fake(axis_deg=-10))["axis_left"] == "contradicted"
    elevated = fake(st_j60_mv={"V1": 0.02, "V2": 0.25, "V3": 0.18, "aVR": 0.3})
    assert verdicts("ST elevation in V2 and V3.", elevated)["st_elevation"] == "supported"
    assert verdicts("ST elevation in V1.", elevated)["st_elevation"] == "contradicted"
    assert verdicts("No ST elevation.", elevated)["not st_elevation"] == "contradicted"
    assert verdicts("No ST depression.", elevated)["not st_depression"] == "supported"


def test_rhythm_is_judged_from_p_waves_and_rr_irregularity():
    sinus = fake(p_wave=1, rr_irregularity=0.01, heart_rate=75)
    fibrillation = fake(p_wave=0, rr_irregularity=0.2, heart_rate=95)
    assert verdicts("Atrial fibrillation.", sinus)["afib"] == "contradicted"
    assert verdicts("Atrial fibrillation.", fibrillation)["afib"] == "supported"
    assert verdicts("Sinus rhythm.", fibrillation)["sinus_rhythm"] == "contradicted"
    regular_no_p = fake(p_wave=0, rr_irregularity=0.01)  # e.g. P waves hidden in T at a fast rate
    assert verdicts("Sinus rhythm.", regular_no_p)["sinus_rhythm"] == "supported"
    assert verdicts("Atrial fibrillation.", regular_no_p)["afib"] == "contradicted"


def test_bundle_branch_blocks_need_width_and_their_shape():
    rbbb = fake(qrs_ms=140, qrs_terminal_mv={"V1": 0.8, "I": -0.4, "V6": -0.5},
                qrs_initial_mv={"V1": 0.2, "I": -0.1, "V5": -0.1, "V6": -0.1})
    assert verdicts("Right bundle branch block.", rbbb)["rbbb"] == "supported"
    assert verdicts("Left bundle branch block.", rbbb)["lbbb"] == "contradicted"  # R' in V1, septal q
    narrow = fake(qrs_ms=105, qrs_terminal_mv={"V1": -0.2}, qrs_initial_mv={"I": 0.05, "V5": 0.05, "V6": 0.05})
    assert verdicts("Left bundle branch block.", narrow)["lbbb"] == "contradicted"  # < 110 ms


def test_what_cannot_be_measured_is_not_checkable():
    m = fake(heart_rate=70)
    result = verify_report("Old inferior infarction. Left ventricular hypertrophy. QTc 440 ms. Rate 70.", m)
    by_finding = {v.statement.finding: v for v in result.verdicts}
    assert by_finding["infarct_inferior"].verdict == "not_checkable"
    assert by_finding["lvh"].verdict == "not_checkable"
    assert by_finding["qtc_ms"].verdict == "not_checkable"
    assert "qtc_ms: not_in_this_test" in by_finding["qtc_ms"].evidence["reason"]
    assert by_finding["heart_rate"].verdict == "supported"
    assert by_finding["rate_normal"].verdict == "supported" and by_finding["rate_normal"].statement.inferred
    assert result.checkable == 2


# -- whole records --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lbbb_record():
    return make_record(201, findings=["sinus_rhythm", "lbbb", "avb1"])


def test_reference_report_is_supported_and_planted_errors_are_caught(lbbb_record):
    truth, signal = lbbb_record.truth, lbbb_record.signal
    reference = verify_ecg(signal, 500, lbbb_record.report)
    assert reference.count("contradicted") == 0 and reference.count("supported") >= 3
    rate, axis = truth["heart_rate"], truth["axis_deg"]
    wrong = (f"Atrial fibrillation, rate {round(rate * 1.3)} bpm. Right bundle branch block. "
             f"QRS axis {axis + 90} degrees. PR {truth['pr_ms'] - 80} ms.")
    result = verify_ecg(signal, 500, wrong)
    by_finding = {v.statement.finding: v for v in result.verdicts}
    for finding in ("afib", "heart_rate", "rbbb", "axis_deg", "pr_ms"):
        assert by_finding[finding].verdict == "contradicted", finding
    assert abs(by_finding["heart_rate"].measured["heart_rate"] - rate) < 2
    assert by_finding["rbbb"].evidence["leads"] == ["V1"]
    assert by_finding["pr_ms"].evidence["spans_s"] and by_finding["pr_ms"].evidence["leads"]


def test_json_has_statements_and_measurements(lbbb_record):
    out = verify_ecg(lbbb_record.signal, 500, lbbb_record.report).to_json()
    assert set(out) == {"statements", "measurements", "summary"}
    for statement in out["statements"]:
        assert {"text", "finding", "verdict", "measured", "evidence"} <= set(statement)
        assert statement["verdict"] in ("supported", "contradicted", "not_checkable")
    assert out["measurements"]["values"]["qrs_ms"]["value"] > 120
    json.dumps(out)  # plain JSON


def test_flat_record_makes_everything_not_checkable():
    result = verify_ecg(np.zeros((12, 5000)), 500, "Sinus rhythm, rate 70 bpm. Left bundle branch block.")
    assert {v.verdict for v in result.verdicts} == {"not_checkable"}
    assert all("no_usable_lead" in v.evidence["reason"] for v in result.verdicts)


# -- the command ----------------------------------------------------------------------------------------------


def test_verify_command_table_json_file_and_figure(synthetic_raw, tmp_path, capsys):
    import pandas as pd

    db = pd.read_csv(synthetic_raw / "ptbxl_database.csv", index_col="ecg_id")
    row = db.iloc[0]
    record = synthetic_raw / row["filename_lr"]
    assert main(["verify", "--ecg", str(record), "--report", row["report"]]) == 0
    table = capsys.readouterr().out
    assert "verdict" in table and "contradicted" in table and "statements:" in table
    report_file = tmp_path / "report.txt"
    report_file.write_text(f"Atrial fibrillation, rate {int(row['heart_rate']) * 2} bpm.")
    figure = tmp_path / "evidence.png"
    assert main(["verify", "--ecg", str(record), "--report", str(report_file), "--json", "--figure",
                 str(figure)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["finding"]: s["verdict"] for s in out["statements"]}["heart_rate"] == "contradicted"
    assert figure.stat().st_size > 10_000
    np.save(tmp_path / "x.npy", np.zeros((12, 1000)))
    assert main(["verify", "--ecg", str(tmp_path / "x.npy"), "--report", "Sinus rhythm."]) == 3  # no --fs
    assert "--fs" in capsys.readouterr().err
    assert main(["verify", "--ecg", str(record), "--report", "  "]) == 2


# -- corpus figures -------------------------------------------------------------------------------------------


def test_corpus_figures_count_reports_with_nothing_checkable(prepared_100hz, tmp_path):
    from datasets import load_from_disk

    split = load_from_disk(str(prepared_100hz))["test"].select(range(6)).with_format("numpy", columns=["ecg"],
                                                                                      output_all_columns=True)
    rows = [(str(r["id"]), r["ecg"], int(r["fs"])) for r in split]
    references = {str(r["id"]): str(r["report"]) for r in split}
    cache: dict = {}
    figures = verify_corpus(references, rows, out_file=tmp_path / VERDICTS_FILE, cache=cache)
    assert figures["n_records"] == 6 and figures["n_checkable"] > 12
    assert figures["contradicted_share"] <= 0.05
    assert len((tmp_path / VERDICTS_FILE).read_text().splitlines()) == 6
    assert len(cache) == 6
    first = split[0]
    wrong = {**{k: "Trace only." for k in references}, str(first["id"]): f"Rate {2 * int(first['heart_rate'])} bpm."}
    figures = verify_corpus(wrong, rows, cache=cache)
    assert figures["records_nothing_checkable"] == 5  # counted, not hidden
    assert figures["per_finding"]["heart_rate"] == {"statements": 1, "checkable": 1, "contradicted": 1,
                                                   "contradicted_share": 1.0}
    assert figures["contradicted_share"] >= 0.5
    assert "reports with a contradiction" in describe(figures)
    with pytest.raises(DataError, match="no signal"):
        verify_corpus({"nowhere": "Sinus rhythm."}, rows)
