"""Markdown tables and bar plots of a suite's results, beside published reference numbers."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from meit.publish import atomic_write_text
from meit.tables import markdown_table

PLOT_METRICS = ("bleu_4", "meteor", "rouge_l", "cider_d")
#: row-key suffix of a control's clinical micro-F1 drop (``shuffled_clinical_micro_f1_drop``)
DROP_SUFFIX = "_clinical_micro_f1_drop"


def control_names(rows: list[dict[str, Any]]) -> list[str]:
    """The controls whose drops appear in any row, in first-seen order."""
    return list(dict.fromkeys(k.removesuffix(DROP_SUFFIX) for r in rows for k in r if k.endswith(DROP_SUFFIX)))


def grounding_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(row key, header) of the grounding columns present: the distinct-report share, then the drop of
    clinical micro-F1 under each control (near zero: the reports do not depend on the ECG)."""
    columns = [("distinct_reports", "distinct")] if any("distinct_reports" in r for r in rows) else []
    return columns + [(f"{name}{DROP_SUFFIX}", f"Δ micro-F1 ({name})") for name in control_names(rows)]


def read_reference(path: Path, dataset: str | None) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r for r in rows if dataset is None or r.get("dataset") == dataset]


#: score columns of the main table: (row key, header)
SCORE_COLUMNS = (("bleu_1", "BLEU-1"), ("bleu_4", "BLEU-4"), ("meteor", "METEOR"), ("rouge_l", "ROUGE-L"),
                 ("cider_d", "CIDEr-D"), ("clinical_micro_f1", "micro-F1"), ("clinical_macro_f1", "macro-F1"))
#: cost columns, shown when any row has them
COST_COLUMNS = (("seconds_per_step", "s/step"), ("peak_train_mb", "peak MB"), ("trainable_params", "trainable"),
                ("total_params", "total params"), ("reports_per_s", "reports/s"))
#: metrics whose row-to-row differences are compared with the seed-to-seed spread
SPREAD_METRICS = ("meteor", "rouge_l", "cider_d", "clinical_micro_f1", "clinical_macro_f1")


def control_value_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each control's own clinical micro-/macro-F1 (the same model reading another record's ECG)."""
    return [(f"{name}_clinical_{kind}_f1", f"{kind}-F1 ({name})")
            for name in control_names(rows) for kind in ("micro", "macro")
            if any(f"{name}_clinical_{kind}_f1" in r for r in rows)]


def main_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    present = [(k, h) for k, h in SCORE_COLUMNS if any(k in r for r in rows)]
    present += control_value_columns(rows) + grounding_columns(rows)
    return present + [(k, h) for k, h in COST_COLUMNS if any(k in r for r in rows)]


def seed_spread(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per metric, the largest gap between a row and the row it repeats with another seed (``repeat_of``)."""
    by_name = {r["backbone"]: r for r in rows if r.get("status") == "ok"}
    spread: dict[str, float] = {}
    for row in by_name.values():
        twin = by_name.get(row.get("repeat_of") or "")
        if twin is None:
            continue
        for metric in SPREAD_METRICS:
            if isinstance(row.get(metric), int | float) and isinstance(twin.get(metric), int | float):
                spread[metric] = max(spread.get(metric, 0.0), abs(row[metric] - twin[metric]))
    return spread


def spread_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The seed-to-seed spread, then each pair of rows whose difference exceeds it (and which do not)."""
    spread = seed_spread(rows)
    if not spread:
        return []
    ok = [r for r in rows if r.get("status") == "ok" and not r.get("repeat_of")]
    lines = ["", "Seed-to-seed spread (the gap between a row and its repeat with another seed): "
             + ", ".join(f"{m} {v:.4f}" for m, v in spread.items()) + ".",
             "Differences larger than that spread (all other gaps are within it, so not evidence of a difference):"]
    found = False
    for i, a in enumerate(ok):
        for b in ok[i + 1:]:
            bigger = [f"{m} {a[m] - b[m]:+.4f}" for m in spread
                      if isinstance(a.get(m), int | float) and isinstance(b.get(m), int | float)
                      and abs(a[m] - b[m]) > spread[m]]
            if bigger:
                found = True
                lines.append(f"- {a['backbone']} − {b['backbone']}: " + ", ".join(bigger))
    if not found:
        lines.append("- none")
    return lines


def write_markdown(suite: Any, rows: list[dict[str, Any]], path: Path) -> None:
    from meit.bench.suite import resolve_path

    columns = main_columns(rows)
    body = ([row["backbone"], row.get("status", ""), *(row.get(k) for k, _ in columns),
             None if row.get("seconds") is None else str(row["seconds"])] for row in rows)
    lines = [f"# bench: {suite.name}", "",
             markdown_table(["backbone", "status", *(h for _, h in columns), "seconds"], body, left=2)]
    lines += spread_lines(rows)
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        lines += ["", "Failures:"] + [f"- {r['backbone']}: {r.get('error')}" for r in failed]
    if suite.reference:
        ref = read_reference(resolve_path(suite.reference, Path.cwd()), suite.reference_dataset)
        if ref:
            lines += ["", f"Published reference ({suite.reference_dataset or 'all datasets'}; not comparable "
                      "metric-for-metric, see docs/metrics.md):", "",
                      markdown_table(["backbone", *PLOT_METRICS], ([r["backbone"], *(r.get(m) for m in PLOT_METRICS)]
                                                                   for r in ref))]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_plots(rows: list[dict[str, Any]], folder: Path) -> None:
    """One bar chart per main metric across backbones."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    present = [m for m in PLOT_METRICS if any(m in r for r in ok)]
    fig, axes = plt.subplots(1, len(present), figsize=(4 * len(present), 4), squeeze=False)
    names = [r["backbone"] for r in ok]
    for ax, metric in zip(axes[0], present, strict=True):
        ax.bar(range(len(ok)), [r.get(metric) or 0.0 for r in ok], color="#4c72b0")
        ax.set_xticks(range(len(ok)), names, rotation=60, ha="right", fontsize=8)
        ax.set_title(metric)
    fig.tight_layout()
    fig.savefig(folder / "metrics_by_backbone.png", dpi=110)
    plt.close(fig)


def write_grounding_plot(rows: list[dict[str, Any]], folder: Path) -> None:
    """Bars per backbone: the clinical micro-F1 drop under each control, and the distinct-report share
    (real and per control); nothing is drawn when no row has controls."""
    ok = [r for r in rows if r.get("status") == "ok"]
    controls = control_names(ok)
    if not controls:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    names = [r["backbone"] for r in ok]
    panels = [("clinical micro-F1 drop (real − control)", DROP_SUFFIX),
              ("distinct-report share", "_distinct_reports")]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.9 * len(ok) + 4), 4), squeeze=False)
    for ax, (title, suffix) in zip(axes[0], panels, strict=True):
        series = [(name, f"{name}{suffix}") for name in controls]
        if suffix == "_distinct_reports":
            series = [("real", "distinct_reports"), *series]
        width = 0.8 / len(series)
        for index, (label, key) in enumerate(series):
            values = [r.get(key) if isinstance(r.get(key), int | float) else 0.0 for r in ok]
            ax.bar([i + (index - (len(series) - 1) / 2) * width for i in range(len(ok))], values, width,
                   label=label)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_xticks(range(len(ok)), names, rotation=60, ha="right", fontsize=8)
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "grounding_by_backbone.png", dpi=110)
    plt.close(fig)


def write_robustness_curves(rows: list[dict[str, Any]], folder: Path, metric: str = "rouge_l") -> None:
    """One panel per perturbation: ``metric`` against level, one line per backbone (clean at level 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["perturbation"] for r in rows} - {"clean"})
    if not kinds:
        return
    folder.mkdir(parents=True, exist_ok=True)
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.8), squeeze=False)
    colours = plt.get_cmap("tab20")
    for ax, kind in zip(axes[0], kinds, strict=True):
        for index, name in enumerate(backbones):
            mine = [r for r in rows if r["backbone"] == name and metric in r]
            points = sorted((0.0 if r["perturbation"] == "clean" else r["level"], r[metric])
                            for r in mine if r["perturbation"] in ("clean", kind))
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name,
                    color=colours(index % 20))
        ax.set_title(f"{kind}: {metric}")
        ax.set_xlabel("level (mV; leads for dropout)")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(folder / f"robustness_{metric}.png", dpi=110)
    plt.close(fig)
