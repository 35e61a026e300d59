"""English PTB-XL reports composed from the structured labels (``--report scp``).

PTB-XL gives every record ``scp_codes`` (SCP-ECG statement → likelihood) and ``heart_axis``. The
likelihood of a diagnostic statement was read from the wording of the original report (15, 35, 50, 80,
100); 0 means no likelihood was given, as for every rhythm and form statement (Wagner et al. 2020).
A statement is rendered with the certainty its likelihood carries — "possible inferior myocardial
infarction" for 35 — so the composed report does not state a doubtful finding as fact.

Standard library only: ``meit --help`` imports the PTB-XL source module, which imports this one.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from meit.errors import ConfigError

#: statement kinds of scp_statements.csv, in the order a composed report lists them
SCP_ORDER: tuple[str, ...] = ("rhythm", "diagnostic", "form")

#: PTB-XL's ``heart_axis`` codes (Cabrera system, Wagner et al. 2020, table 10) in English. LAD is the
#: German "Linkstyp" (-30° to +30°, within normal limits in English usage) on the German-site records
#: and "left axis deviation" on the English-site ones, so it reads "leftward axis", true for both;
#: ALAD/ARAD are PTB-XL's "abnormal" (extreme) deviations; AXL/AXR are the horizontal and vertical
#: ("Steillage") positions.
HEART_AXIS_WORDS: dict[str, str] = {
    "MID": "normal axis",
    "LAD": "leftward axis",
    "ALAD": "abnormal left axis deviation",
    "RAD": "right axis deviation",
    "ARAD": "abnormal right axis deviation",
    "AXL": "horizontal axis",
    "AXR": "vertical axis",
    "SAG": "sagittal axis (S1-S2-S3 pattern)",
}


@dataclass(frozen=True)
class LikelihoodWording:
    """How a statement's likelihood shows in the text.

    ``0 < likelihood < possible_below`` → "possible …"; ``possible_below <= likelihood < probable_below``
    → "probable …"; 0 (not given) and anything from ``probable_below`` up → the statement as it is.
    A statement with ``0 < likelihood < min_likelihood`` is left out.
    """

    possible_below: float = 50.0
    probable_below: float = 100.0
    min_likelihood: float = 0.0

    def __post_init__(self) -> None:
        values = (self.possible_below, self.probable_below, self.min_likelihood)
        if not all(math.isfinite(v) and 0 <= v <= 100 for v in values):
            raise ConfigError(f"scp likelihood thresholds: expected values in 0-100, got {values}")
        if self.possible_below > self.probable_below:
            raise ConfigError(
                f"scp thresholds: 'possible' below {self.possible_below} must not exceed 'probable' below "
                f"{self.probable_below}"
            )

    def qualifier(self, likelihood: float) -> str | None:
        """"possible", "probable", "" (plain) or None (left out)."""
        if likelihood <= 0 or not math.isfinite(likelihood):
            return ""
        if likelihood < self.min_likelihood:
            return None
        if likelihood < self.possible_below:
            return "possible"
        if likelihood < self.probable_below:
            return "probable"
        return ""

    def describe(self) -> dict:
        return {
            "possible": f"0 < likelihood < {self.possible_below:g}",
            "probable": f"{self.possible_below:g} <= likelihood < {self.probable_below:g}",
            "plain": f"likelihood 0 (not given) or >= {self.probable_below:g}",
            "left_out": f"0 < likelihood < {self.min_likelihood:g}" if self.min_likelihood > 0 else "none",
        }


@dataclass
class ScpStats:
    """What composing did over a table, for the manifest."""

    rows: int = 0
    qualified: Counter[str] = field(default_factory=Counter)
    left_out: int = 0
    unknown_codes: Counter[str] = field(default_factory=Counter)
    axis_rendered: int = 0
    unknown_axis: Counter[str] = field(default_factory=Counter)

    def manifest(self, wording: LikelihoodWording, heart_axis: bool, axis_column: bool) -> dict:
        return {
            "likelihood_wording": wording.describe(),
            "thresholds": {"possible_below": wording.possible_below, "probable_below": wording.probable_below,
                           "min_likelihood": wording.min_likelihood},
            "statements_possible": self.qualified.get("possible", 0),
            "statements_probable": self.qualified.get("probable", 0),
            "statements_left_out_below_min_likelihood": self.left_out,
            "unknown_codes_skipped": dict(sorted(self.unknown_codes.items())),
            "heart_axis": (
                "off" if not heart_axis else "no heart_axis column" if not axis_column else HEART_AXIS_WORDS
            ),
            "rows_with_heart_axis": self.axis_rendered,
            "unknown_heart_axis_skipped": dict(sorted(self.unknown_axis.items())),
        }


def compose_scp_report(
    codes: dict[str, float],
    statements: dict[str, tuple[int, str]],
    *,
    wording: LikelihoodWording | None = None,
    heart_axis: str | None = None,
    stats: ScpStats | None = None,
) -> str:
    """English report: rhythm statements, the heart axis, then diagnostic, then form statements.

    ``statements`` maps a code to (kind index in :data:`SCP_ORDER`, description). Within a kind,
    higher likelihood first, then code order; unknown codes and axis codes are skipped (and counted
    in ``stats``). Statements are joined with ". " and the report ends with ".".
    """
    wording = wording or LikelihoodWording()
    known: list[tuple[int, float, str]] = []
    for code, likelihood in codes.items():
        if code in statements:
            known.append((statements[code][0], -likelihood, code))
        elif stats is not None:
            stats.unknown_codes[code] += 1
    parts: list[str] = []
    seen: set[str] = set()
    axis_text = _axis_text(heart_axis, stats)
    axis_done = axis_text is None

    def add(text: str) -> None:
        if text and text not in seen:
            seen.add(text)
            parts.append(text)

    for kind, neg_likelihood, code in sorted(known):
        if not axis_done and kind > 0:
            add(axis_text or "")
            axis_done = True
        qualifier = wording.qualifier(-neg_likelihood)
        if qualifier is None:
            if stats is not None:
                stats.left_out += 1
            continue
        text = statements[code][1].rstrip(". ")
        if qualifier and text:
            if stats is not None:
                stats.qualified[qualifier] += 1
            text = f"{qualifier} {text}"
        add(text)
    if not axis_done:
        add(axis_text or "")
    if stats is not None:
        stats.rows += 1
    return ". ".join(parts) + "." if parts else ""


def _axis_text(heart_axis: str | None, stats: ScpStats | None) -> str | None:
    code = (heart_axis or "").strip()
    if not code:
        return None
    words = HEART_AXIS_WORDS.get(code.upper())
    if stats is not None:
        if words is None:
            stats.unknown_axis[code] += 1
        else:
            stats.axis_rendered += 1
    return words
