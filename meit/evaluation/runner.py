"""``meit eval``: generate for a split, score the continuations, write metrics with provenance."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from meit.config import EvalConfig, Recipe
from meit.data.dataset import evaluation_instruction, report_dataset
from meit.data.prompts import PromptFormat
from meit.evaluation.io import write_predictions
from meit.evaluation.metrics import check_scorers
from meit.evaluation.model_card import record_evaluation
from meit.evaluation.provenance import provenance
from meit.inference.generation import DecodingSettings, generate_reports
from meit.publish import atomic_write_text

log = logging.getLogger(__name__)


def decoding_from(cfg: EvalConfig, seed: int) -> DecodingSettings:
    return DecodingSettings(max_new_tokens=cfg.max_new_tokens, num_beams=cfg.num_beams, do_sample=cfg.do_sample,
                            temperature=cfg.temperature, top_p=cfg.top_p, seed=seed)


def score_rows(rows: list[dict[str, str]], cfg: EvalConfig) -> dict[str, Any]:
    """Text metrics over the whole set (BLEU corpus-level, the rest means over pairs) plus clinical finding
    accuracy (micro/macro P/R/F1)."""
    from meit.evaluation.scoring import score_reports

    return score_reports({row["id"]: row["prediction"] for row in rows},
                         {row["id"]: row["reference"] for row in rows}, meteor=cfg.meteor, bertscore=cfg.bertscore)


def evaluate_model(
    model: Any,
    recipe: Recipe,
    out_dir: str | Path,
    *,
    data_path: str | None = None,
    split: str | None = None,
    checkpoint: str | None = None,
    progress: bool = True,
    label: str = "eval",
    perturb: Any = None,
    controls: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Generate on ``split`` of the prepared dataset, write ``predictions.jsonl`` and ``metrics.json``.

    Then each control (``controls``, default ``eval.controls``; none under a perturbation) runs with the
    same model and decoding on the same rows, into ``OUT/controls/<name>/``; ``metrics.json`` gains its
    scalar metrics under ``controls`` and the real-minus-control drops under ``grounding``. A clean evaluation
    of a saved artifact (``checkpoint``) is recorded in its model card (``meit.evaluation.model_card``).
    """
    names = list(controls if controls is not None else ([] if perturb is not None else recipe.eval.controls))
    check_scorers(meteor=recipe.eval.meteor, bertscore=recipe.eval.bertscore)
    job = _Job(model, recipe, split or recipe.eval.split, data_path or recipe.data.path, checkpoint, progress)
    out = Path(out_dir)
    dataset, result = job.run(out, label, perturb, {"perturbation": perturb.label if perturb is not None else None,
                                                    "controls": names})
    if names:
        result.update(_evaluate_controls(job, out, label, names, dataset.split, result))
        atomic_write_text(out / "metrics.json", json.dumps(result, indent=2))
    if perturb is None:  # a clean evaluation of a saved artifact goes into its model card (never fatal)
        record_evaluation(checkpoint, model, result, recipe, out)
    return result


class _Job:
    """What every pass of one evaluation shares (model, rows, decoding), so controls differ only in signal."""

    def __init__(self, model: Any, recipe: Recipe, split: str, data_path: str | None, checkpoint: str | None,
                 progress: bool) -> None:
        self.model, self.recipe, self.split, self.data_path = model, recipe, split, data_path
        self.checkpoint, self.progress = checkpoint, progress
        self.settings = decoding_from(recipe.eval, recipe.seed)
        self.measured: dict[str, Any] = {}  # record id -> its signal's measurements, shared by every pass

    def run(self, folder: Path, desc: str, hook: Any, extra: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Generate with signal ``hook`` (a perturbation, a control or None), write predictions, then score."""
        cfg = self.recipe.eval
        dataset = report_dataset(
            self.recipe.data.require_path(self.data_path), self.split, tokenizer=self.model.tokenizer,
            prompt_format=PromptFormat.from_model(self.model, self.recipe.model.max_length),
            contract=self.model.encoder.contract, max_samples=cfg.max_samples,
            instruction_seed=self.recipe.data.instruction_seed, fixed_instruction=evaluation_instruction(),
            with_report=False, perturb=hook,
            image_cache=self.recipe.data.image_cache if self.data_path in (None, self.recipe.data.path) else None,
        )
        started = time.perf_counter()
        rows = generate_reports(self.model, dataset, self.settings, batch_size=cfg.batch_size,
                                progress=self.progress, desc=f"{desc}: generate")
        generation_seconds = time.perf_counter() - started
        source_of = getattr(hook, "source_of", None)
        if source_of is not None:  # a control: which record's ECG (if any) each report was written from
            rows = [{**row, "ecg_from": source_of(row["id"])} for row in rows]
        write_predictions(folder / "predictions.jsonl", rows)  # before scoring: a scorer error keeps them
        result = {
            **score_rows(rows, cfg),
            # wall time of generation only (batched, this machine): the suites' reports/s column
            "generation": {"seconds": round(generation_seconds, 3), "batch_size": cfg.batch_size,
                           "reports_per_s": round(len(rows) / generation_seconds, 3) if generation_seconds else None},
            "provenance": provenance(self.checkpoint, str(self.data_path), self.split, self.settings.as_dict(),
                                     {"instruction": evaluation_instruction(), "n": len(rows), **extra}),
        }
        if cfg.verify:  # each report against its own record's stored signal, whatever ECG the model read
            from meit.verify.corpus import VERDICTS_FILE, verify_corpus

            result["verification"] = verify_corpus({row["id"]: row["prediction"] for row in rows},
                                                   _stored_records(dataset), out_file=folder / VERDICTS_FILE,
                                                   cache=self.measured)
            result["verify_contradicted_share"] = result["verification"]["contradicted_share"]
        atomic_write_text(folder / "metrics.json", json.dumps(result, indent=2))
        return dataset, result


def _stored_records(dataset: Any, batch: int = 64) -> Iterator[tuple[str, Any, int]]:
    """(id, stored signal, fs) of every row of an evaluation dataset, read in batches."""
    split = dataset.split
    for start in range(0, len(split), batch):
        rows = split[start:start + batch]
        yield from zip((str(i) for i in rows["id"]), rows["ecg"], (int(f) for f in rows["fs"]), strict=True)


def _evaluate_controls(job: _Job, out: Path, label: str, names: Sequence[str], rows: Any,
                       real: dict[str, Any]) -> dict[str, Any]:
    """``{"controls": {name: scalar metrics}, "grounding": {name: drops}}`` on the evaluated ``rows``."""
    from meit.evaluation.controls import build_control, grounding, skip_reason

    seed = job.recipe.seed
    scores: dict[str, Any] = {}
    drops: dict[str, Any] = {}
    for name in names:
        reason = skip_reason(name, len(rows))
        if reason is not None:
            log.warning("control %s skipped: %s", name, reason)
            scores[name] = {"skipped": reason}
            continue
        _, metrics = job.run(out / "controls" / name, f"{label} · {name}", build_control(name, rows, seed),
                             {"control": name, "control_seed": seed})
        scores[name] = scalar_metrics(metrics)
        drops[name] = grounding(real, metrics)
    return {"controls": scores, "grounding": drops}


def load_and_evaluate(checkpoint: str, data_path: str, split: str, out_dir: str, recipe: Recipe,
                      progress: bool = True, perturbations: list[Any] | None = None,
                      trust_remote_code: bool = False) -> dict[str, Any]:
    """Reload an artifact and evaluate it (clean with its controls, then under each perturbation if any).

    ``trust_remote_code`` is the caller's decision (``meit eval --trust-remote-code``); the artifact's own
    record of it is never enough.
    """
    from meit.models import MeitModel

    model = MeitModel.from_pretrained(checkpoint, trust_remote_code=trust_remote_code)
    model_cfg = getattr(model, "cfg", None)
    if model_cfg is not None and hasattr(model_cfg, "max_length"):
        recipe = recipe.model_copy(update={"model": model_cfg})
    metrics = evaluate_model(model, recipe, out_dir, data_path=data_path, split=split, checkpoint=checkpoint,
                             progress=progress)
    if perturbations:
        evaluate_robustness(model, recipe, out_dir, perturbations, data_path=data_path, split=split,
                            checkpoint=checkpoint, clean=metrics, progress=progress)
    return metrics


def evaluate_robustness(model: Any, recipe: Recipe, out_dir: str | Path, specs: list[Any], *,
                        data_path: str | None = None, split: str | None = None, checkpoint: str | None = None,
                        clean: dict[str, Any] | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Evaluate under each perturbation level; write ``robustness.csv``, ``robustness.md`` and a plot."""
    from meit.evaluation.robustness import write_robustness

    out = Path(out_dir)
    rows = []
    if clean is not None:
        rows.append({"perturbation": "clean", "level": 0.0, **scalar_metrics(clean)})
    for spec in specs:
        metrics = evaluate_model(model, recipe, out / "robustness" / spec.label, data_path=data_path, split=split,
                                 checkpoint=checkpoint, progress=progress, label=spec.label, perturb=spec,
                                 controls=[])
        rows.append({"perturbation": spec.name, "level": spec.level, **scalar_metrics(metrics)})
    write_robustness(rows, out)
    return rows


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics (drops provenance and the per-finding clinical table)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
