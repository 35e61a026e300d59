"""The ECG with each checked statement's evidence marked: where in which leads a verdict was read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from meit.leads import CANONICAL_LEADS
from meit.verify.report import ReportVerification

_COLOURS = {"supported": "#2a9d4b", "contradicted": "#d62728"}
#: spans longer than this (s, e.g. the rate over the whole record) are drawn in the statement lanes only
_SHADE_AT_MOST_S = 1.0


def draw_evidence(signal: np.ndarray, fs: int, result: ReportVerification, path: str | Path) -> Path:
    """Write a PNG: one lane per checkable statement on top (its evidence spans as bars, green supported, red
    contradicted), then the twelve leads with the beats ticked and each short evidence span (a median-beat
    interval, an ST level, a premature beat) shaded on the leads it was read from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.nan_to_num(np.asarray(signal, dtype=float))
    t = np.arange(x.shape[1]) / fs
    shown = [v for v in result.verdicts if v.verdict in _COLOURS and v.evidence.get("spans_s")]
    lanes = max(len(shown), 1)
    fig, axes = plt.subplots(
        len(CANONICAL_LEADS) + 1, 1, figsize=(14, 12 + 0.25 * lanes), sharex=True,
        gridspec_kw={"height_ratios": [max(0.25 * lanes, 0.6)] + [1.0] * len(CANONICAL_LEADS)})
    top, leads_axes = axes[0], axes[1:]
    for row, (ax, name) in enumerate(zip(leads_axes, CANONICAL_LEADS, strict=True)):
        ax.plot(t, x[row], color="black", linewidth=0.6)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.set_yticks([])
        for beat in result.measurements.beats_s:
            ax.axvline(beat, color="0.85", linewidth=0.5, zorder=0)
    labels = []
    for lane, v in enumerate(shown):
        colour = _COLOURS[v.verdict]
        y = lanes - 1 - lane
        labels.append(("not " if v.statement.negated else "") + v.statement.finding)
        leads = [lead for lead in v.evidence.get("leads", []) if lead in CANONICAL_LEADS] or list(CANONICAL_LEADS)
        for a, b in v.evidence["spans_s"]:
            b = max(b, a + 2.0 / fs)
            top.plot([a, b], [y, y], color=colour, linewidth=5, solid_capstyle="butt")
            if b - a <= _SHADE_AT_MOST_S:
                for lead in leads:
                    leads_axes[CANONICAL_LEADS.index(lead)].axvspan(a, b, color=colour, alpha=0.2)
    top.set_yticks(range(lanes - 1, lanes - 1 - len(labels), -1), labels, fontsize=7)
    top.set_ylim(-0.7, lanes - 0.3)
    top.set_xlim(0, t[-1] if t.size else 1)
    leads_axes[-1].set_xlabel("time (s)")
    counts = ", ".join(f"{result.count(name)} {name.replace('_', ' ')}"
                       for name in ("supported", "contradicted", "not_checkable"))
    fig.suptitle(f"statements checked against the signal: {counts} (green supported, red contradicted)")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
