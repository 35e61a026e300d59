"""PTB-XL's labels in the finding vocabulary of :mod:`meit.findings`: SCP statements and ``heart_axis``; and the
five diagnostic superclasses (NORM, MI, STTC, CD, HYP) that paper-ECG classification predicts.

A leaf module, data only (plus the one function that applies it). It says which findings a PTB-XL row's
``scp_codes`` and ``heart_axis`` imply, so the extractor can be measured against the cardiologists' codes
(``python -m meit.bench ptbxl-text``) and a model's findings named in PTB-XL's terms.

Decisions, each for a reason:

* **Likelihood.** Every listed code counts, whatever its likelihood. PTB-XL gives form and rhythm statements
  likelihood 0, which means "not stated", not "absent" (``SR: 0.0`` on every sinus-rhythm record); its
  diagnostic likelihoods 15-50 code hedged statements ("nicht auszuschliessen", "möglich"), and the
  extractor counts hedged statements as stated, so the two sides agree on what a hedge is.
* **Voltage criteria.** VCLVH ("voltage criteria (QRS) for left ventricular hypertrophy") and HVOLT are
  ``high_voltage``, not ``lvh``: only LVH is hypertrophy.
* **Infarction and injury.** The MI codes, subendocardial injury (INJ*) included, map to their territories
  (ASMI → anterior + septal, ILMI → inferior + lateral, …); PTB-XL puts INJ* in its MI class.
* **T waves.** NDT (non-diagnostic T abnormalities), NT_, TAB_ and LOWT (low amplitude T) are
  ``t_abnormality``; INVT is ``t_inversion``; NST_ (non-specific ST changes) is ``st_t_abnormality``.
* **Axis** comes from ``heart_axis`` in the English sense: ALAD (überdrehter Linkstyp, < -30 deg) is
  ``axis_left``; RAD (Rechtstyp, > +90) and ARAD are ``axis_right``; LAD ("Linkstyp", -30..+30), MID, AXL
  and AXR (Steiltyp) are ``axis_normal``; SAG (sagittal type) is ``axis_extreme`` (indeterminate). A row
  without ``heart_axis`` says nothing about the axis (not "normal"): compare axis findings only on rows
  that have one.
* **Not in the vocabulary** (no finding): ABQRS, QWAVE, DIG, EL, ANEUR, SEHYP, PRC(S), SVARR, TRIGU.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

_INF, _ANT, _SEP, _LAT, _POST = ("infarct_inferior", "infarct_anterior", "infarct_septal", "infarct_lateral",
                                 "infarct_posterior")

#: SCP code -> findings it implies.
SCP_FINDINGS: dict[str, tuple[str, ...]] = {
    # rhythm
    "SR": ("sinus_rhythm",), "SBRAD": ("sinus_brady",), "STACH": ("sinus_tachy",),
    "SARRH": ("sinus_arrhythmia",), "AFIB": ("afib",), "AFLT": ("aflutter",), "SVTAC": ("svt",),
    "PSVT": ("svt",), "PACE": ("paced",), "BIGU": ("bigeminy",),
    # conduction
    "1AVB": ("avb1",), "LPR": ("avb1",), "2AVB": ("avb2",), "3AVB": ("avb3",), "CLBBB": ("lbbb",),
    "CRBBB": ("rbbb",), "ILBBB": ("incomplete_lbbb",), "IRBBB": ("incomplete_rbbb",), "LAFB": ("lafb",),
    "LPFB": ("lpfb",), "IVCD": ("ivcd",), "WPW": ("wpw",), "LNGQT": ("long_qt",),
    # ST-T
    "STD_": ("st_depression",), "STE_": ("st_elevation",), "NST_": ("st_t_abnormality",),
    "NDT": ("t_abnormality",), "NT_": ("t_abnormality",), "TAB_": ("t_abnormality",),
    "LOWT": ("t_abnormality",), "INVT": ("t_inversion",),
    "ISC_": ("ischemia",), "ISCAL": ("ischemia",), "ISCAN": ("ischemia",), "ISCAS": ("ischemia",),
    "ISCIL": ("ischemia",), "ISCIN": ("ischemia",), "ISCLA": ("ischemia",),
    # voltage, hypertrophy
    "LVOLT": ("low_voltage",), "HVOLT": ("high_voltage",), "VCLVH": ("high_voltage",),
    "LVH": ("lvh",), "RVH": ("rvh",), "LAO/LAE": ("lae",), "RAO/RAE": ("rae",),
    # ectopy
    "PVC": ("pvc",), "PAC": ("pac",),
    # infarction and subendocardial injury
    "IMI": (_INF,), "ILMI": (_INF, _LAT), "IPMI": (_INF, _POST), "IPLMI": (_INF, _POST, _LAT),
    "ASMI": (_ANT, _SEP), "AMI": (_ANT,), "ALMI": (_ANT, _LAT), "LMI": (_LAT,), "PMI": (_POST,),
    "INJAS": (_ANT, _SEP), "INJAL": (_ANT, _LAT), "INJIN": (_INF,), "INJLA": (_LAT,), "INJIL": (_INF, _LAT),
    # summary
    "NORM": ("normal_ecg",),
}

#: SCP codes that name no finding of the vocabulary (listed so that a new code is noticed, not dropped).
SCP_UNMAPPED: frozenset[str] = frozenset({"ABQRS", "QWAVE", "DIG", "EL", "ANEUR", "SEHYP", "PRC(S)", "SVARR",
                                          "TRIGU"})

#: PTB-XL ``heart_axis`` -> axis finding, in the English sense (see the module docstring).
HEART_AXIS_FINDINGS: dict[str, str] = {
    "ALAD": "axis_left", "LAD": "axis_normal", "AXL": "axis_normal", "MID": "axis_normal",
    "AXR": "axis_normal", "RAD": "axis_right", "ARAD": "axis_right", "SAG": "axis_extreme",
}

#: Every finding PTB-XL's labels can state: the findings a comparison with them can score.
SCP_SCORABLE: frozenset[str] = frozenset(
    {f for findings in SCP_FINDINGS.values() for f in findings} | set(HEART_AXIS_FINDINGS.values())
)
AXIS_FINDINGS: frozenset[str] = frozenset(HEART_AXIS_FINDINGS.values())


#: PTB-XL's five diagnostic superclasses (``scp_statements.csv`` column ``diagnostic_class``), in its order
SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
#: diagnostic SCP code -> superclass: PTB-XL's 44 diagnostic statements (form and rhythm codes have none)
SCP_SUPERCLASS: dict[str, str] = {
    "NORM": "NORM",
    **dict.fromkeys(("IMI", "ASMI", "ILMI", "AMI", "ALMI", "INJAS", "LMI", "INJAL", "IPLMI", "IPMI", "INJIN", "INJLA",
                     "PMI", "INJIL"), "MI"),
    **dict.fromkeys(("NDT", "NST_", "DIG", "LNGQT", "ISC_", "ISCAL", "ISCIN", "ISCIL", "ISCAS", "ISCLA", "ANEUR", "EL",
                     "ISCAN"), "STTC"),
    **dict.fromkeys(("LAFB", "IRBBB", "1AVB", "IVCD", "CRBBB", "CLBBB", "LPFB", "WPW", "ILBBB", "3AVB", "2AVB"), "CD"),
    **dict.fromkeys(("LVH", "LAO/LAE", "RVH", "RAO/RAE", "SEHYP"), "HYP"),
}


def scp_superclasses(codes: Mapping[str, float]) -> frozenset[str]:
    """The diagnostic superclasses of a row's SCP codes (every listed code, any likelihood, as for findings).

    A row with no diagnostic code has none (PTB-XL's benchmarks leave such rows out of the superclass task)."""
    return frozenset(SCP_SUPERCLASS[code] for code in codes if code in SCP_SUPERCLASS)


def parse_scp_codes(cell: Any) -> dict[str, float]:
    """The ``scp_codes`` cell (a Python dict literal, code → likelihood); ``{}`` for an empty or broken cell."""
    if isinstance(cell, Mapping):
        return {str(k): float(v) for k, v in cell.items()}
    try:
        value = ast.literal_eval(str(cell))
    except (ValueError, SyntaxError):
        return {}
    return {str(k): float(v) for k, v in value.items()} if isinstance(value, dict) else {}


def scp_findings(codes: Mapping[str, float], heart_axis: str | None = None) -> frozenset[str]:
    """Findings implied by a row's SCP codes (every listed code, any likelihood) and its ``heart_axis``."""
    found = {f for code in codes for f in SCP_FINDINGS.get(code, ())}
    axis = HEART_AXIS_FINDINGS.get(str(heart_axis).strip()) if heart_axis else None
    if axis:
        found.add(axis)
    return frozenset(found)
