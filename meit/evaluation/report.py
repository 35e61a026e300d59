"""Human-facing results: a 12-lead figure beside its reports, and a markdown report with a metrics table."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from meit.leads import CANONICAL_LEADS
from meit.tables import markdown_table

TABLE_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d", "rouge_1", "rouge_2",
                 "clinical_micro_f1", "clinical_macro_f1", "distinct_reports")


def plot_ecg_with_reports(signal: np.ndarray, fs: int, reference: str, prediction: str, path: Path,
                          title: str = "") -> Path:
    """12 leads in the usual 6 × 2 layout on the left, the reference and generated report on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(signal.shape[1]) / fs
    # one amplitude scale for all leads, as on paper ECGs, so lead amplitudes compare at a glance
    span = float(np.nanpercentile(np.abs(signal), 99.9)) * 1.1 or 1.0
    fig = plt.figure(figsize=(16, 8), constrained_layout=True)
    grid = fig.add_gridspec(6, 3, width_ratios=[1, 1, 0.9])
    for i, lead in enumerate(CANONICAL_LEADS):
        ax = fig.add_subplot(grid[i % 6, i // 6])
        ax.plot(t, signal[i], lw=0.7, color="black")
        ax.set_ylim(-span, span)
        ax.set_ylabel(f"{lead}\nmV", rotation=0, labelpad=16, fontsize=8)
        ax.grid(True, which="both", color="#f4b6b6", lw=0.4)
        ax.tick_params(labelsize=7)
        if i % 6 != 5:
            ax.set_xticklabels([])
        else:
            ax.set_xlabel("s", fontsize=8)
    text_ax = fig.add_subplot(grid[:, 2])
    text_ax.axis("off")
    body = (
        "Reference report\n\n" + textwrap.fill(reference, 48)
        + "\n\n\nGenerated report\n\n" + textwrap.fill(prediction or "(empty)", 48)
    )
    text_ax.text(0.0, 1.0, body, va="top", ha="left", fontsize=10, family="monospace", wrap=True)
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metrics_table(rows: Mapping[str, Mapping[str, float]], metrics: Sequence[str] = TABLE_METRICS) -> str:
    """A markdown table, one row per named result, one column per metric present in any of them."""
    present = [m for m in metrics if any(m in r for r in rows.values())]
    body = [[name, *(float(values[m]) if isinstance(values.get(m), int | float) else None for m in present)]
            for name, values in rows.items()]
    return markdown_table(["model", *present], body)
