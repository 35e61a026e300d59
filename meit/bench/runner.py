"""Run a suite in sequence here, or emit one accelerate job per backbone for a cluster."""

from __future__ import annotations

import csv
import json
import logging
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meit.bench.memory import PeakRss
from meit.bench.suite import Suite, SuiteEntry, resolve_path
from meit.config import Recipe, dump_recipe, load_recipe
from meit.tables import write_csv

log = logging.getLogger(__name__)
SCORE_KEYS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d", "rouge_1", "rouge_2",
              "clinical_micro_f1", "clinical_macro_f1", "distinct_reports")
#: what each control contributes to a row beside its drops (``shuffled_clinical_micro_f1`` …)
CONTROL_KEYS = ("clinical_micro_f1", "clinical_macro_f1", "distinct_reports")


def result_cells(metrics: dict[str, Any]) -> dict[str, Any]:
    """One backbone's numbers as flat row cells: the scores, then per control its drops
    (``shuffled_clinical_micro_f1_drop`` …) and distinct-report share, when controls ran."""
    cells = {k: metrics[k] for k in SCORE_KEYS if k in metrics}
    controls = metrics.get("controls", {})
    for name, drops in metrics.get("grounding", {}).items():
        cells.update({f"{name}_{key}": value for key, value in drops.items()})
        for key in CONTROL_KEYS:
            cells[f"{name}_{key}"] = controls.get(name, {}).get(key)
    rate = metrics.get("generation", {}).get("reports_per_s")
    if rate is not None:
        cells["reports_per_s"] = rate
    return cells


def model_cells(model: Any, final_dir: Path, steps: int, loop_seconds: float) -> dict[str, Any]:
    """Size and training speed of a trained row: parameters (trainable, total) and seconds per optimizer step.

    The trainable count is the one training used, from the artifact's model card: a reloaded model's
    ``requires_grad`` flags are not the training's."""
    card = final_dir / "model_card.json"
    trained = json.loads(card.read_text())["model"]["parameters"].get("trainable") if card.is_file() else None
    return {"trainable_params": trained,
            "total_params": sum(p.numel() for p in model.parameters()),
            "seconds_per_step": round(loop_seconds / steps, 3) if steps else None}


def entry_recipe(suite: Suite, entry: SuiteEntry, suite_dir: Path, data_path: Path) -> Recipe:
    out = Path(suite.output_dir) / entry.name
    overrides = [*suite.overrides, *entry.overrides, f"model.llm={entry.name}" if not any(
        o.startswith("model.llm=") for o in entry.overrides) else "", f"output_dir={out}", f"data.path={data_path}"]
    return load_recipe(resolve_path(entry.base_recipe or suite.base_recipe, suite_dir), [o for o in overrides if o])


def prepare_data(suite: Suite, suite_dir: Path, progress: bool = True) -> Path:
    """The suite's prepared dataset: given, or synthesised + prepared once under the output dir."""
    if suite.data_path:
        return resolve_path(suite.data_path, suite_dir)
    from meit.synth.prepared import synthetic_prepared

    assert suite.synth is not None
    return synthetic_prepared(Path(suite.output_dir) / "data", suite.synth.n, seed=suite.synth.seed,
                              source=suite.synth.source, workers=2, progress=progress)


def run_sequential(suite: Suite, suite_dir: Path, progress: bool = True,
                   kept: Kept | None = None) -> list[dict[str, Any]]:
    """Train and evaluate each backbone in turn; one failing backbone is recorded, the rest go on.

    ``kept``: an earlier run's table (``--only``); each new row replaces its backbone's earlier one as it arrives.
    """
    from meit.evaluation.perturb import parse_perturbations
    from meit.evaluation.runner import evaluate_model, evaluate_robustness
    from meit.models import MeitModel
    from meit.training import train

    data_path = prepare_data(suite, suite_dir, progress)
    rows: list[dict[str, Any]] = []
    robustness: list[dict[str, Any]] = []
    for index, entry in enumerate(suite.backbones, 1):
        print(f"\n== bench {index}/{len(suite.backbones)}: {entry.name} ==", flush=True)
        started = time.time()
        row: dict[str, Any] = {"backbone": entry.name}
        if entry.repeat_of:
            row["repeat_of"] = entry.repeat_of
        try:
            recipe = entry_recipe(suite, entry, suite_dir, data_path)
            specs = parse_perturbations(suite.perturb, seed=recipe.seed)  # as `meit eval --recipe` of a job
            with PeakRss() as peak:
                result = train(recipe, progress=progress)
            row["peak_train_mb"] = peak.megabytes
            model = MeitModel.from_pretrained(result.final_dir)
            metrics = evaluate_model(model, recipe, Path(recipe.output_dir) / "eval", checkpoint=str(result.final_dir),
                                     progress=progress, label=entry.name)
            row.update(result_cells(metrics))
            if specs:
                swept = evaluate_robustness(model, recipe, Path(recipe.output_dir) / "eval", specs,
                                            checkpoint=str(result.final_dir), clean=metrics, progress=progress)
                robustness.extend({"backbone": entry.name, **r} for r in swept)
            row.update(status="ok", steps=result.steps, final_loss=result.losses[-1] if result.losses else None,
                       **model_cells(model, Path(result.final_dir), result.steps, result.seconds))
        except Exception as err:  # one backbone failing must not lose the others' results
            log.exception("backbone %s failed", entry.name)
            row.update(status="failed", error=f"{type(err).__name__}: {err}")
        row["seconds"] = round(time.time() - started, 1)
        rows.append(row)
        write_results(suite, rows, robustness, kept)
    return rows


@dataclass(frozen=True)
class Kept:
    """What an earlier run of the suite recorded, for a partial re-run (``--only``) to write back beside its rows.

    A backbone's earlier row (and robustness rows) stay until its new row arrives, so a re-run that dies half-way
    loses nothing of the earlier table.
    """

    order: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    robustness: tuple[dict[str, Any], ...]

    @classmethod
    def read(cls, suite: Suite) -> Kept:
        out = Path(suite.output_dir)
        return cls(tuple(b.name for b in suite.backbones), tuple(read_rows(out / "results.csv")),
                   tuple(read_rows(out / "robustness.csv")))

    def merge(self, rows: list[dict[str, Any]], robustness: list[dict[str, Any]]
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Earlier rows, each replaced by a new row of the same backbone, in the suite's order (rows of backbones
        no longer in it come last)."""
        new = {row["backbone"] for row in rows}
        position = {name: index for index, name in enumerate(self.order)}
        merged = sorted([*(r for r in self.rows if r.get("backbone") not in new), *rows],
                        key=lambda row: position.get(row["backbone"], len(position)))
        swept = {row["backbone"] for row in robustness}
        return merged, [*(r for r in self.robustness if r.get("backbone") not in swept | new), *robustness]


def emit_jobs(suite: Suite, suite_dir: Path, launcher: str) -> list[Path]:
    """One shell script per backbone (train then eval), ready for ``sbatch`` or a job queue."""
    data_path = Path(suite.data_path) if suite.data_path else Path(suite.output_dir) / "data" / "prepared"
    jobs_dir = Path(suite.output_dir) / "jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    scripts = []
    for entry in suite.backbones:
        recipe = entry_recipe(suite, entry, suite_dir, data_path)
        out = Path(recipe.output_dir)
        recipe_file = jobs_dir / f"{entry.name}.yaml"
        recipe_file.write_text(dump_recipe(recipe))
        script = jobs_dir / f"{entry.name}.sh"
        # the eval step reads the same recipe (decoding, scorers, controls, seeds) and sweeps the suite's
        # perturbations, so an emitted job scores exactly as --mode run does
        perturb = "".join(f" --perturb {shlex.quote(spec)}" for spec in suite.perturb)
        script.write_text(
            "#!/usr/bin/env bash\nset -euo pipefail\n"
            f"{launcher} -m meit.cli train {shlex.quote(str(recipe_file))}\n"
            f"python -m meit.cli eval --recipe {shlex.quote(str(recipe_file))} "
            f"--checkpoint {shlex.quote(str(out / 'final'))} --data {shlex.quote(str(data_path))} "
            f"--out {shlex.quote(str(out / 'eval'))}{perturb}\n"
        )
        script.chmod(0o755)
        scripts.append(script)
    return scripts


def collect(suite: Suite, kept: Kept | None = None) -> list[dict[str, Any]]:
    """Rows from each backbone's ``eval/metrics.json`` (after emitted jobs have run), robustness included;
    ``kept``: an earlier table the collected rows are written into (``--only``)."""
    rows, robustness = [], []
    for entry in suite.backbones:
        folder = Path(suite.output_dir) / entry.name / "eval"
        file = folder / "metrics.json"
        if file.is_file():
            metrics = json.loads(file.read_text())
            rows.append({"backbone": entry.name, "status": "ok", **result_cells(metrics)})
            robustness.extend({"backbone": entry.name, **row} for row in read_rows(folder / "robustness.csv"))
        else:
            rows.append({"backbone": entry.name, "status": "missing"})
    write_results(suite, rows, robustness, kept)
    return rows


#: columns that hold names or messages, never numbers (a backbone may be called ``2024``)
TEXT_COLUMNS = frozenset({"backbone", "repeat_of", "status", "error", "perturbation"})


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV this module or ``evaluate_robustness`` wrote (``results.csv``, ``robustness.csv``): numbers as
    numbers, empty cells dropped; none if the file is absent."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{key: value if key in TEXT_COLUMNS else _number(value) for key, value in row.items() if value != ""}
                for row in csv.DictReader(handle)]


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def write_results(suite: Suite, rows: list[dict[str, Any]], robustness: list[dict[str, Any]] | None = None,
                  kept: Kept | None = None) -> None:
    """results.csv/.md and the figures; with ``kept``, the new rows are written into that earlier table."""
    from meit.bench.tables import write_grounding_plot, write_markdown, write_plots, write_robustness_curves

    if kept is not None:
        rows, robustness = kept.merge(rows, robustness or [])
    out = Path(suite.output_dir)
    write_csv(rows, out / "results.csv")
    write_markdown(suite, rows, out / "results.md")
    write_plots(rows, out / "figures")
    write_grounding_plot(rows, out / "figures")
    if robustness:
        write_csv(robustness, out / "robustness.csv")
        write_robustness_curves(robustness, out / "figures")
