"""The robustness table (metric per perturbation level) as CSV, markdown and curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meit.publish import atomic_write_text
from meit.tables import markdown_table, write_csv

SHOWN = ("bleu_4", "meteor", "rouge_l", "cider_d")


def write_robustness(rows: list[dict[str, Any]], out: Path) -> None:
    write_csv(rows, out / "robustness.csv")
    shown = [m for m in SHOWN if any(m in r for r in rows)]
    table = markdown_table(["perturbation", "level", *shown],
                           ([row["perturbation"], f"{row['level']:g}", *(row.get(m) for m in shown)] for row in rows))
    atomic_write_text(out / "robustness.md", table + "\n")
    _plot(rows, shown, out / "robustness.png")


def _plot(rows: list[dict[str, Any]], metrics: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean = next((r for r in rows if r["perturbation"] == "clean"), None)
    kinds = sorted({r["perturbation"] for r in rows} - {"clean"})
    if not kinds or not metrics:
        return
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for kind in kinds:
            points = sorted((r["level"], r[metric]) for r in rows if r["perturbation"] == kind and metric in r)
            if clean is not None and metric in clean:
                points = [(0.0, clean[metric]), *points]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=kind)
        ax.set_title(metric)
        ax.set_xlabel("level (mV; leads for dropout)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
