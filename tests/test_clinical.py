"""Clinical finding extraction (negation-aware) and micro/macro P/R/F1."""

from __future__ import annotations

import pytest

from meit.errors import DataError
from meit.evaluation.clinical import (
    FINDINGS,
    clinical_scores,
    extract_findings,
    find_mentions,
    normalise,
    score_finding_sets,
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("sinus rhythm. normal ecg.", {"sinus_rhythm", "rate_normal", "normal_ecg"}),
        ("Slow sinus rhythm (sinus bradycardia), 52/min.", {"sinus_brady", "rate_brady"}),
        ("Rapid sinus rhythm (sinus tachycardia), 130/min.", {"sinus_tachy", "rate_tachy"}),
        ("atrial fibrillation with rapid ventricular response", {"afib", "rate_tachy"}),
        ("Atrial fibrillation, average ventricular rate 55/min.", {"afib", "rate_brady"}),
        ("atrial flutter with 2:1 block", {"aflutter"}),
        ("sinus rhythm with 1st degree a-v block", {"sinus_rhythm", "rate_normal", "avb1"}),
        ("Prolonged PR interval of 240 ms.", {"avb1"}),
        ("second degree av block, mobitz i", {"avb2"}),
        ("complete heart block", {"avb3"}),
        ("Complete left bundle branch block.", {"lbbb"}),
        ("incomplete right bundle branch block", {"incomplete_rbbb"}),
        ("RBBB and LAFB", {"rbbb", "lafb", "axis_left"}),
        ("Left posterior fascicular block.", {"lpfb", "axis_right"}),
        ("left axis deviation", {"axis_left"}),
        ("QRS axis +120 degrees.", {"axis_right"}),
        ("QRS axis -60 degrees.", {"axis_left"}),
        ("QRS axis -6 degrees, normal.", {"axis_normal"}),
        ("Normal QRS axis (+45 degrees).", {"axis_normal"}),
        ("Inferior ST elevation.", {"st_elevation"}),
        ("ST segment depression in the lateral leads (leads I, aVL, V5 and V6).", {"st_depression"}),
        ("nonspecific st-t wave abnormality", {"st_t_abnormality"}),
        ("T wave inversion in V1-V3", {"t_inversion"}),
        ("consider anterior ischaemia", {"ischemia"}),
        ("Low QRS voltages in the frontal and horizontal leads.", {"low_voltage"}),
        ("left ventricular hypertrophy with repolarization abnormality", {"lvh"}),
        ("left atrial enlargement. rvh", {"lae", "rvh"}),
        ("Occasional ventricular premature beats.", {"pvc"}),
        ("2 PVCs noted.", {"pvc"}),
        ("premature atrial complexes in a pattern of bigeminy", {"pac", "bigeminy"}),
        ("inferior infarct, age undetermined", {"infarct_inferior"}),
        ("old anteroseptal myocardial infarction", {"infarct_anterior", "infarct_septal"}),
        ("possible infarct", {"infarct"}),
        ("Within normal limits.", {"normal_ecg"}),
        ("No abnormality detected.", {"normal_ecg"}),
        ("Borderline ECG", {"borderline_ecg"}),
        ("Abnormal electrocardiogram.", {"abnormal_ecg"}),
        ("ventricular pacing", {"paced"}),
        ("supraventricular tachycardia", {"svt", "rate_tachy"}),
        ("ventricular tachycardia", {"vt", "rate_tachy"}),
        ("", set()),
    ],
)
def test_extract_findings(text: str, want: set[str]) -> None:
    assert extract_findings(text) == want
    assert want <= set(FINDINGS)


@pytest.mark.parametrize(
    ("text", "absent", "present"),
    [
        ("No ST elevation.", {"st_elevation"}, set()),
        ("no st elevation or depression", {"st_elevation", "st_depression"}, set()),
        ("sinus rhythm without st changes", {"st_t_abnormality"}, {"sinus_rhythm"}),
        ("ST elevation is no longer present.", {"st_elevation"}, set()),
        ("ST depression has resolved.", {"st_depression"}, set()),
        ("does not meet voltage criteria for lvh", {"lvh", "high_voltage"}, set()),
        ("negative for infarction", {"infarct"}, set()),
        ("absence of pvcs", {"pvc"}, set()),
        ("no st elevation, left axis deviation", {"st_elevation"}, {"axis_left"}),
        ("no acute st changes but t wave inversion in v1", {"st_t_abnormality"}, {"t_inversion"}),
        ("Irregularly irregular rhythm without P waves: atrial fibrillation.", set(), {"afib"}),
        ("cannot rule out anterior infarct", set(), {"infarct_anterior"}),
        ("inferior infarct cannot be excluded", set(), {"infarct_inferior"}),
        ("atrial fibrillation without rapid ventricular response", {"rate_tachy"}, {"afib"}),
        ("no previous tracing available for comparison. there is no significant change. lvh", set(), {"lvh"}),
    ],
)
def test_negation(text: str, absent: set[str], present: set[str]) -> None:
    got = extract_findings(text)
    assert not got & absent, got
    assert present <= got, got


def test_negation_window_is_limited() -> None:
    far = "no comparison was made with the earlier tracing from the referring hospital st elevation"
    assert "st_elevation" in extract_findings(far)
    assert [m.negated for m in find_mentions("no st elevation")] == [True]


def test_normalise() -> None:
    assert normalise("1st degree A-V block, S-T depression, ischaemia") == (
        "first degree av block, st depression, ischemia"
    )


def test_scores_by_hand() -> None:
    preds = {"a": "sinus rhythm. left axis deviation.", "b": "atrial fibrillation. pvcs.", "c": ""}
    refs = {"a": "sinus rhythm. normal axis.", "b": "atrial fibrillation.", "c": "sinus bradycardia."}
    s = clinical_scores(preds, refs)
    # a: tp sinus_rhythm, rate_normal; fp axis_left; fn axis_normal. b: tp afib; fp pvc.
    # c: fn sinus_brady, rate_brady (bradycardia word gives the rate class).
    tp, fp, fn = 3, 2, 3
    assert s["micro_precision"] == pytest.approx(tp / (tp + fp))
    assert s["micro_recall"] == pytest.approx(tp / (tp + fn))
    assert s["micro_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    table = s["per_finding"]
    assert set(table) == {"sinus_rhythm", "rate_normal", "axis_left", "axis_normal", "afib", "pvc",
                          "sinus_brady", "rate_brady"}
    assert table["afib"] == {"group": "rhythm", "tp": 1, "fp": 0, "fn": 0, "support": 1,
                             "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert table["pvc"]["precision"] == 0.0 and table["pvc"]["support"] == 0
    macro_f1 = sum(row["f1"] for row in table.values()) / len(table)
    assert s["macro_f1"] == pytest.approx(macro_f1) == pytest.approx(3 / 8)
    assert s["exact_match"] == 0.0 and s["n"] == 3


def test_perfect_and_empty_sets() -> None:
    same = score_finding_sets([frozenset({"afib"}), frozenset()], [frozenset({"afib"}), frozenset()])
    assert same["micro_f1"] == same["macro_f1"] == same["exact_match"] == 1.0
    none = score_finding_sets([frozenset()], [frozenset()])
    assert none["micro_f1"] == 0.0 and none["per_finding"] == {} and none["exact_match"] == 1.0


def test_ids_must_match() -> None:
    with pytest.raises(DataError, match="ids differ"):
        clinical_scores({"a": "x"}, {"b": "x"})


# --- against the synthetic generator's ground truth ------------------------------------------------

SYNTH_TO_FINDING = {
    "sinus_rhythm": "sinus_rhythm", "sinus_brady": "sinus_brady", "sinus_tachy": "sinus_tachy",
    "afib": "afib", "avb1": "avb1", "lbbb": "lbbb", "rbbb": "rbbb", "lad": "axis_left", "rad": "axis_right",
    "st_elevation": "st_elevation", "st_depression": "st_depression", "low_voltage": "low_voltage",
    "pvc": "pvc",
}


def test_f1_against_synthetic_ground_truth() -> None:
    import meit.synth as synth
    assert set(SYNTH_TO_FINDING) == set(synth.CATALOGUE), "generator catalogue changed: update the map"
    space = set(SYNTH_TO_FINDING.values()) | {"rate_brady", "rate_normal", "rate_tachy"}
    mix = synth.LabelMix(normal=0.15, avb1=0.3, lbbb=0.2, rbbb=0.2, lad=0.3, rad=0.2, st_elevation=0.3,
                         st_depression=0.3, low_voltage=0.3, pvc=0.3)
    predicted, expected = [], []
    for seed in range(400):
        rec = synth.make_record(seed, fs=100, seconds=4.0, label_mix=mix)
        hr = int(rec.truth["heart_rate"])
        rate = "rate_brady" if hr < 60 else "rate_tachy" if hr > 100 else "rate_normal"
        truth = {SYNTH_TO_FINDING[f] for f in rec.truth["findings"]} | {rate}
        found = extract_findings(rec.report)
        predicted.append(frozenset(found & space))
        expected.append(frozenset(truth))
        # findings outside the generator's vocabulary must not contradict it
        assert not (found & {"axis_left", "axis_right", "axis_normal"}) - truth - {"axis_normal"}
        if "axis_normal" in found:
            assert not truth & {"axis_left", "axis_right"}, rec.report
        assert ("normal_ecg" in found) <= (rec.truth["findings"] == ["sinus_rhythm"]), rec.report
    scores = score_finding_sets(predicted, expected)
    assert scores["micro_f1"] >= 0.98 and scores["macro_f1"] >= 0.98, scores
    assert set(scores["per_finding"]) == space
