"""`python -m meit.bench verify`: measurement error against the synthetic truth, reference reports supported,
planted errors caught (a tiny run; the full figures are in docs/evaluation.md)."""

import json

from meit.bench.registry import BENCHMARKS
from meit.bench.verify import main, plant_errors

TRUTH = {"heart_rate": 72, "axis_deg": 35, "rhythm": "sinus_rhythm", "findings": ["sinus_rhythm"]}


def test_planted_errors_change_exactly_one_statement():
    report = "Sinus rhythm at 72 bpm. QRS axis +35 degrees, normal. Normal ECG."
    planted = {p.kind: p for p in plant_errors(report, TRUTH, 0)}
    assert set(planted) == {"wrong rate", "wrong axis", "AF on a sinus record", "bundle branch block not there"}
    assert planted["wrong rate"].report == "Sinus rhythm at 90 bpm. QRS axis +35 degrees, normal. Normal ECG."
    assert planted["wrong axis"].report == "Sinus rhythm at 72 bpm. QRS axis +125 degrees, normal. Normal ECG."
    assert planted["AF on a sinus record"].report.startswith("Atrial fibrillation with a ventricular rate of 72")
    assert planted["bundle branch block not there"].report.endswith("Complete left bundle branch block.")
    odd = {p.kind: p for p in plant_errors("Atrial fibrillation, rate 72 bpm.", {
        **TRUTH, "rhythm": "afib", "findings": ["afib", "rbbb"]}, 1)}
    assert set(odd) == {"wrong rate", "wrong axis"}  # no AF plant on AF, no BBB plant on a BBB record
    assert odd["wrong rate"].value == 54 and odd["wrong axis"].report.endswith("QRS axis -55 degrees.")


def test_tiny_run_reports_errors_supported_share_and_caught_share(tmp_path, capsys):
    assert "verify" in BENCHMARKS
    code = main(["--n", "6", "--seed", "3", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert "Measurement error against the ground truth" in text and "Planted errors caught" in text
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(results) == {"500", "100"}
    for figures in results.values():
        assert figures["records"] == 6
        assert figures["errors"]["heart_rate"]["median_abs"] < 2
        assert figures["reference"]["supported_share"] >= 0.9
        assert figures["planted"]["wrong rate"]["n"] == 6
    assert code in (0, 1)  # 1 when a target is missed; six records are too few to promise either
    assert (tmp_path / "results.md").read_text().startswith("## Report verification")
