"""`meit prep ptbxl` on real PTB-XL rows (tests/data/ptbxl_real), report cleaning, SCP wording, lead selection.

The 19 real records (CC BY 4.0, see tests/data/ptbxl_real/SOURCES.md) carry the text problems the
cleaning rules exist for; records with more than 12 signals are built here, as PTB Diagnostic writes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from data_prep.ptbxl import prepare_ptbxl
from data_prep.report_cleaning import RULE_NAMES, clean_report_text, normalise_space
from data_prep.scp_reports import HEART_AXIS_WORDS, LikelihoodWording, compose_scp_report
from meit.cli import main
from meit.errors import ConfigError
from meit.leads import CANONICAL_LEADS
from meit.records import RecordRejected, SignalPolicy, read_signal, select_leads
from tests.raw_fixtures import make_ptbxl, synthetic_signal, write_record

REAL = Path(__file__).parent / "data" / "ptbxl_real"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _table() -> pd.DataFrame:
    return pd.read_csv(REAL / "ptbxl_database.csv")


def _rows(out: Path) -> dict[str, dict]:
    dd = datasets.load_from_disk(str(out))
    return {str(r["id"]): r for split in dd.values() for r in split.remove_columns("ecg")}


def _rejected(out: Path) -> dict[str, dict]:
    return {json.loads(x)["id"]: json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()}


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "original"
    manifest = prepare_ptbxl(REAL, out, source="records100", workers=1, progress=False)
    return out, manifest


@pytest.fixture(scope="module")
def scp(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "scp"
    manifest = prepare_ptbxl(REAL, out, source="records100", report="scp", workers=1, progress=False)
    return out, manifest


# --- the real sample, --report original ------------------------------------------------------------------


def test_every_real_record_is_kept_or_rejected_with_a_reason(original):
    out, manifest = original
    ids = {str(i) for i in _table()["ecg_id"]}
    rows, rejected = _rows(out), _rejected(out)
    assert set(rows) | set(rejected) == ids and not set(rows) & set(rejected)
    assert manifest["inputs"] == len(ids) == 19
    # "trace only requested." is a placeholder, not a report: rejected with its own reason and the text
    assert rejected["258"]["reason"] == "empty_after_cleaning"
    assert "trace only requested." in rejected["258"]["detail"]
    assert manifest["rejected_by_reason"] == {"empty_after_cleaning": 1}
    assert all(str(r["report"]).strip() for r in rows.values())


def test_cleaning_removes_edit_notes_and_repairs_encoding(original):
    out, _ = original
    rows = _rows(out)
    r87, r164 = str(rows["87"]["report"]), str(rows["164"]["report"])
    assert r87 == ("sinusrhythmus unvollständiger rechtsschenkelblock t abnormal, wahrscheinlich "
                   "inferiorer myokardschaden")
    assert "Edit" not in r164 and "(f,26)" not in r164 and r164.endswith("vänster kammarbelastning.")
    assert "qt-verlängerung" in str(rows["7"]["report"]) and "Ä" not in str(rows["7"]["report"])
    assert "såsom" in str(rows["102"]["report"])
    assert str(rows["8"]["report"]).endswith("inferiorer infarkt alter unbest.")  # "age undetermined" is kept
    # report_original keeps the table's text as it was
    assert "Edit: INJIN, IRBBB, (m,19)" in str(rows["87"]["report_original"])
    assert "verlÄngerung" in str(rows["7"]["report_original"])
    for row in rows.values():
        assert "Edit:" not in str(row["report"])
        assert not set("ÄÖÜÅ#á") & set(str(row["report"]))


def test_cleaning_counts_in_the_manifest(original):
    _, manifest = original
    table = _table()
    reports = table["report"].fillna("").map(normalise_space)
    cleaning = manifest["report_cleaning"]
    by_rule = cleaning["rows_changed_by_rule"]
    assert set(by_rule) == set(RULE_NAMES) and cleaning["enabled"] is True
    assert by_rule["edit_note"] == reports.str.contains("Edit:", regex=False).sum() == 5
    assert by_rule["no_interpretation"] == (reports == "trace only requested.").sum() == 1
    before_edit = reports.str.split("Edit:").str[0]
    assert by_rule["umlaut_case"] == before_edit.str.contains("[ÄÖÜÅ]").sum() > 0
    assert cleaning["rows_checked"] == (reports != "").sum()
    assert cleaning["rows_emptied"] == manifest["rejected_by_reason"]["empty_after_cleaning"]
    assert cleaning["rows_changed"] >= max(by_rule.values())
    assert manifest["config"]["clean_reports"] is True


def test_no_clean_reports_keeps_the_table_text(tmp_path, capsys):
    out = tmp_path / "raw_text"
    code = main(["prep", "ptbxl", str(REAL), str(out), "--source", "records100", "--workers", "1",
                 "--no-progress", "--no-clean-reports", "--limit", "12"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["report_cleaning"] == {"enabled": False} and manifest["config"]["clean_reports"] is False
    rows = _rows(out)
    assert all(str(r["report"]) == str(r["report_original"]) for r in rows.values())
    assert "Edit: INJIN" in str(rows["87"]["report"])


# --- the real sample, --report scp ---------------------------------------------------------------------------


def test_scp_reports_word_likelihoods(scp):
    out, manifest = scp
    rows = _rows(out)
    assert str(rows["8"]["report"]) == (
        "sinus rhythm. leftward axis. possible inferior myocardial infarction. abnormal QRS.")  # IMI 35
    assert "probable ischemic in anterolateral leads" in str(rows["102"]["report"])  # ISCAL 50
    assert "possible inferior myocardial infarction" in str(rows["142"]["report"])  # IMI 15
    assert str(rows["2"]["report"]) == "sinus bradycardia. probable normal ECG."  # NORM 80
    assert "258" in rows  # the placeholder text does not matter here: the codes make the report
    counted = manifest["scp_report"]
    assert counted["statements_possible"] >= 2 and counted["statements_probable"] >= 2
    assert counted["thresholds"] == {"possible_below": 50.0, "probable_below": 100.0, "min_likelihood": 0.0}


def test_scp_reports_state_the_heart_axis(scp):
    out, manifest = scp
    rows = _rows(out)
    table = _table().set_index("ecg_id")
    assert str(rows["7"]["report"]) == "sinus rhythm. leftward axis. normal ECG."  # LAD: "linkstyp"
    assert "abnormal left axis deviation" in str(rows["17"]["report"])  # ALAD
    assert "abnormal right axis deviation" in str(rows["222"]["report"])  # ARAD
    with_axis = table["heart_axis"].notna()
    assert manifest["scp_report"]["rows_with_heart_axis"] == with_axis.sum()
    for ecg_id, axis in table["heart_axis"].items():
        text = str(rows[str(ecg_id)]["report"])
        if isinstance(axis, str):
            assert HEART_AXIS_WORDS[axis] in text
        else:
            assert not any(words in text for words in HEART_AXIS_WORDS.values()), ecg_id


def test_scp_options_from_the_cli(tmp_path, capsys):
    out = tmp_path / "plain"
    code = main(["prep", "ptbxl", str(REAL), str(out), "--source", "records100", "--workers", "1",
                 "--no-progress", "--report", "scp", "--scp-thresholds", "0,0", "--scp-min-likelihood", "40",
                 "--no-scp-heart-axis"])
    assert code == 0, capsys.readouterr().err
    rows = _rows(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["scp_thresholds"] == [0.0, 0.0] and manifest["config"]["scp_min_likelihood"] == 40.0
    assert str(rows["8"]["report"]) == "sinus rhythm. abnormal QRS."  # IMI 35 left out, no axis
    assert str(rows["102"]["report"]) == "sinus rhythm. first degree AV block. ischemic in anterolateral leads."
    assert not any("possible" in str(r["report"]) or "axis" in str(r["report"]) for r in rows.values())
    assert manifest["scp_report"]["statements_left_out_below_min_likelihood"] >= 2
    for bad in (["--scp-thresholds", "80,50"], ["--scp-thresholds", "fifty"], ["--scp-min-likelihood", "150"]):
        code = main(["prep", "ptbxl", str(REAL), str(tmp_path / "bad"), "--source", "records100",
                     "--no-progress", "--report", "scp", *bad])
        assert code == 2, bad
        assert "scp" in capsys.readouterr().err


def test_likelihood_wording_thresholds():
    wording = LikelihoodWording()
    assert [wording.qualifier(v) for v in (0, 15, 35, 49.9, 50, 80, 99, 100)] == [
        "", "possible", "possible", "possible", "probable", "probable", "probable", ""]
    strict = LikelihoodWording(possible_below=40, probable_below=90, min_likelihood=20)
    assert [strict.qualifier(v) for v in (0, 15, 35, 50, 90)] == ["", None, "possible", "probable", ""]
    with pytest.raises(ConfigError):
        LikelihoodWording(possible_below=60, probable_below=50)
    statements = {"SR": (0, "sinus rhythm"), "IMI": (1, "inferior myocardial infarction"), "ABQRS": (2, "abnormal QRS")}
    assert compose_scp_report({"ABQRS": 0.0, "IMI": 35.0}, statements, heart_axis="ALAD") == (
        "abnormal left axis deviation. possible inferior myocardial infarction. abnormal QRS.")
    assert compose_scp_report({}, statements, heart_axis="MID") == "normal axis."
    assert compose_scp_report({"SR": 0.0}, statements, heart_axis="XYZ") == "sinus rhythm."


# --- records with more than 12 signals ------------------------------------------------------------------------

FRANK = ["vx", "vy", "vz"]
PTB_NAMES = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]


def _extra_leads(directory: Path, name: str, names: list[str], seed: int = 0, fmt: str = "16") -> np.ndarray:
    """A record with the given signal names; returns the (12, T) canonical part that must be kept."""
    rng = np.random.default_rng(seed)
    sig = synthetic_signal(rng, 100, 10.0)
    frank = synthetic_signal(rng, 100, 10.0)[:3]
    by_name = {lead.lower(): sig[i] for i, lead in enumerate(CANONICAL_LEADS)}
    by_name.update({f: frank[i] for i, f in enumerate(FRANK)})
    file_sig = np.stack([by_name[n.lower()] for n in names])
    if fmt == "16":
        write_record(directory, name, 100, file_sig, names)
    else:
        import wfdb

        n = len(names)
        wfdb.wrsamp(name, fs=100, units=["mV"] * n, sig_name=names, p_signal=file_sig.T.copy(), fmt=[fmt] * n,
                    adc_gain=[1000.0] * n, baseline=[0] * n, write_dir=str(directory))
    return sig


@pytest.mark.parametrize("fmt", ["16", "212"])
def test_fifteen_leads_keep_the_standard_twelve(tmp_path, fmt):
    names = [*PTB_NAMES[:6], *FRANK[:1], *PTB_NAMES[6:], *FRANK[1:]]  # a Frank lead in the middle, any case
    sig = _extra_leads(tmp_path, "s0010_re", names, fmt=fmt)
    ecg, repairs = read_signal(str(tmp_path / "s0010_re"), SignalPolicy(fs=100, seconds=10.0))
    assert ecg.shape == (12, 1000)
    np.testing.assert_allclose(ecg, sig, atol=1e-6 if fmt == "16" else 1e-3)
    assert repairs == ["dropped_leads:vx,vy,vz"]


def test_lead_selection_rules():
    perm, dropped = select_leads([*PTB_NAMES, *FRANK])
    assert perm == list(range(12)) and dropped == FRANK
    upper = [n.upper() for n in reversed(PTB_NAMES)]
    assert select_leads(upper) == (list(range(11, -1, -1)), [])
    cases = [
        ([n for n in PTB_NAMES if n != "v3"] + FRANK, "missing_lead", "V3"),
        (PTB_NAMES[:11], "wrong_lead_count", "V6"),
        ([*PTB_NAMES[:11], "x7"], "unknown_leads", "V6"),
        ([*PTB_NAMES, "V1"], "unknown_leads", "V1"),
    ]
    for names, reason, named in cases:
        with pytest.raises(RecordRejected) as info:
            select_leads(names)
        assert info.value.reason == reason and named in info.value.detail, names


def test_prep_counts_dropped_leads_and_names_a_missing_one(tmp_path):
    raw = make_ptbxl(tmp_path / "raw", 4, fs=100, quirks=False)
    folder = raw.root / "records100" / "00000"
    kept = _extra_leads(folder, "00002_lr", [*PTB_NAMES, *FRANK], seed=2)
    _extra_leads(folder, "00003_lr", [n for n in PTB_NAMES if n != "v3"] + FRANK, seed=3)
    out = tmp_path / "out"
    manifest = prepare_ptbxl(raw.root, out, source="records100", workers=1, progress=False)
    rejected = _rejected(out)
    assert set(rejected) == {"3"} and rejected["3"]["reason"] == "missing_lead"
    assert rejected["3"]["detail"].startswith("V3 not among the 14 signals")
    assert manifest["dropped_leads"] == {"vx": 1, "vy": 1, "vz": 1}
    assert manifest["repaired_records_by_kind"] == {"dropped_leads": 1}
    dd = datasets.load_from_disk(str(out))
    row = next(r for split in dd.values() for r in split.with_format("numpy") if r["id"] == "2")
    assert list(row["repairs"]) == ["dropped_leads:vx,vy,vz"]
    np.testing.assert_allclose(row["ecg"], kept, atol=1e-6)


# --- cleaning rules on constructed text ------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "clean", "rules"), [
    ("sinusrhythmus lagetyp normal normales ekg 4.46 unbestÄtigter bericht",
     "sinusrhythmus lagetyp normal normales ekg", ("autogenerated_marker",)),
    ("sinusrhythmus linkstyp sonst normales ekg 4.46                  unbestÄtigter bericht Edit: NORM 80, "
     "(NORM 100, IVCB)", "sinusrhythmus linkstyp sonst normales ekg", ("edit_note", "autogenerated_marker")),
    ("sinusrhythmus normales ekg 4.46 unbestätigter bericht.", "sinusrhythmus normales ekg",
     ("autogenerated_marker",)),
    ("novodigal 0,2 unbestätigter bericht", "novodigal 0,2", ("autogenerated_marker",)),
    ("unbestätigter bericht", "", ("autogenerated_marker",)),
    ("inferiorer infarkt alter unbest.", "inferiorer infarkt alter unbest.", ()),
    ("qrs(t) abnormal inferiorer infarkt alter unbest. 4.46 unbestÄtigter bericht",
     "qrs(t) abnormal inferiorer infarkt alter unbest.", ("autogenerated_marker",)),
    ("sinus rhythm. normal ecg. Edit: NORM 100, (NORM 100)", "sinus rhythm. normal ecg.", ("edit_note",)),
    ("sinus rhythm, edit: NORM", "sinus rhythm", ("edit_note",)),
    ("no credit: given", "no credit: given", ()),
    ("Edit: NORM 100", "", ("edit_note",)),
    ("trace only requested. Edit: NORM 100", "", ("edit_note", "no_interpretation")),
    ("2:1 Überleitung bei vorhofflattern", "2:1 überleitung bei vorhofflattern", ("umlaut_case",)),
    ("t-fÖrÄndring, sÅsom vid", "t-förändring, såsom vid", ("umlaut_case",)),
    ("ÜBER ALLES", "ÜBER ALLES", ()),
    ("Übelkeit nach Belastung", "Übelkeit nach Belastung", ()),
    ("mÄssige amplitudenkriterien f#r linkshypertrophie", "mässige amplitudenkriterien für linkshypertrophie",
     ("umlaut_case", "hash_as_ue")),
    ("r-s #bergang in v", "r-s übergang in v", ("hash_as_ue",)),
    ("lead # 2 and #3", "lead # 2 and #3", ()),
    ("kurzer schweiáausbruch", "kurzer schweißausbruch", ("acute_a_as_sz",)),
    ("sinusrytm ó¿ ó¬ st-t", "sinusrytm st-t", ("control_glyphs",)),
])
def test_cleaning_rules_on_constructed_reports(raw, clean, rules):
    assert clean_report_text(raw) == (clean, rules)


_FRAGMENTS = ["Edit:", "edit:", " Edit: ", "4.46", " ", "  ", ",", ":", ".", "unbestÄtigter", "unbestätigter",
              "bericht", "alter unbest.", "trace only requested.", "Ä", "Ö", "Ü", "Å", "ä", "#", "f#r", "á", "ó",
              "ó¬", "¬", "x", "E", "qt-verlÄngerung", "ÜBER", "0,2", "(m,19)", "\t", "\n"]
_TEXT = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(_FRAGMENTS), max_size=14).map("".join))


@SETTINGS
@given(text=_TEXT)
def test_cleaning_never_crashes_is_idempotent_and_never_lengthens(text):
    cleaned, rules = clean_report_text(text)
    assert clean_report_text(cleaned) == (cleaned, ())
    assert len(cleaned) <= len(normalise_space(text))
    assert set(rules) <= set(RULE_NAMES)
    assert set(cleaned) - set(text) <= set("äöüåß ")  # repairs only, nothing invented
    if not rules:
        assert cleaned == normalise_space(text)


@SETTINGS
@given(head=_TEXT, note=_TEXT)
def test_cleaning_never_removes_text_before_edit(head, note):
    assume("edit:" not in head.casefold())
    with_note, rules = clean_report_text(f"{head} Edit: {note}")
    alone, _ = clean_report_text(head)
    assert "edit_note" in rules
    assert [c for c in with_note if c.isalnum()] == [c for c in alone if c.isalnum()]
