"""Time the report metrics on N synthetic report pairs: ``python -m meit.bench metrics --n 10000``.

References are MIMIC-style statement lists; each prediction keeps, drops, swaps and replaces some
statements, so scores land in a realistic range rather than at 0 or 1. Each metric is timed on its
own, then ``compute_metrics`` end to end (what ``meit score`` runs) and the clinical extractor.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from meit.tables import format_table

STATEMENTS: tuple[str, ...] = (
    "sinus rhythm", "sinus bradycardia", "sinus tachycardia", "atrial fibrillation with rapid ventricular response",
    "atrial fibrillation", "atrial flutter with variable block", "sinus rhythm with 1st degree a-v block",
    "left axis deviation", "right axis deviation", "left anterior fascicular block", "right bundle branch block",
    "left bundle branch block", "incomplete right bundle branch block", "left ventricular hypertrophy",
    "low qrs voltages in limb leads", "inferior infarct - age undetermined", "anteroseptal infarct - age undetermined",
    "st elevation, consider inferior injury", "lateral st-t changes are nonspecific", "no st elevation",
    "t wave inversion in anterior leads", "prolonged qt interval", "premature ventricular complexes",
    "premature atrial complexes", "poor r wave progression - probable normal variant", "borderline ecg",
    "abnormal ecg", "normal ecg", "rate 72 bpm", "ventricular rate 118 bpm",
)


def make_pairs(n: int, seed: int = 0) -> tuple[dict[str, str], dict[str, str]]:
    """``n`` (prediction, reference) report pairs, deterministic in ``seed``."""
    rng = random.Random(seed)
    preds: dict[str, str] = {}
    refs: dict[str, str] = {}
    for i in range(n):
        ref = rng.sample(STATEMENTS, rng.randint(2, 7))
        pred = [s for s in ref if rng.random() > 0.25]
        if pred and rng.random() < 0.3:
            pred[rng.randrange(len(pred))] = rng.choice(STATEMENTS)
        if rng.random() < 0.3:
            pred.insert(rng.randrange(len(pred) + 1), rng.choice(STATEMENTS))
        if len(pred) > 1 and rng.random() < 0.2:
            j = rng.randrange(len(pred) - 1)
            pred[j], pred[j + 1] = pred[j + 1], pred[j]
        key = f"ecg{i:06d}"
        refs[key] = ". ".join(ref) + "."
        preds[key] = ". ".join(pred) + ("." if pred else "")
    return preds, refs


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run(n: int, seed: int = 0, meteor: bool = True, bertscore: bool = False) -> dict[str, Any]:
    """Seconds per metric and end to end for ``n`` pairs (WordNet loading timed separately)."""
    from meit.evaluation import metrics as m
    from meit.evaluation.clinical import clinical_scores

    preds, refs = make_pairs(n, seed)
    ids = list(refs)
    p_list, r_list = [preds[i] for i in ids], [refs[i] for i in ids]
    timings: dict[str, float] = {}
    values: dict[str, Any] = {}
    timings["tokenise (MEIT rule)"], (gts, res) = _timed(lambda: m.coco_inputs(preds, refs, ids))
    timings["bleu_1..4 (pycocoevalcap)"], values["bleu"] = _timed(lambda: m.coco_bleu(gts, res))
    timings["rouge_l (pycocoevalcap)"], values["rouge_l"] = _timed(lambda: m.coco_rouge_l(gts, res))
    timings["cider_d (pycocoevalcap)"], values["cider_d"] = _timed(lambda: m.coco_cider_d(gts, res))
    if meteor:
        timings["wordnet load (once per process)"], _ = _timed(m._meteor_tools)
        timings["meteor (nltk)"], values["meteor"] = _timed(lambda: m.nltk_meteor(p_list, r_list))
    timings["rouge_1/2 (rouge_score)"], values["rouge_12"] = _timed(lambda: m.rouge_1_2(p_list, r_list))
    if bertscore:
        timings["bertscore_f1 (MiniLM, incl. load)"], values["bertscore_f1"] = _timed(
            lambda: m.bertscore_f1(p_list, r_list))
    timings["compute_metrics, all enabled"], values["all"] = _timed(
        lambda: m.compute_metrics(preds, refs, meteor=meteor, bertscore=bertscore))
    timings["clinical_scores"], clinical = _timed(lambda: clinical_scores(preds, refs))
    values["clinical_micro_f1"] = clinical["micro_f1"]
    return {"n": n, "seed": seed, "seconds": timings, "metrics": values["all"],
            "clinical_micro_f1": clinical["micro_f1"]}


def format_result(result: dict[str, Any]) -> str:
    n = result["n"]
    rows = [{"step": name, "seconds": f"{sec:.2f}", "rate": f"{n / sec:.0f}" if sec > 0 and "once" not in name else ""}
            for name, sec in result["seconds"].items()]
    lines = [f"{n} report pairs", format_table(rows, [("step", "step"), ("seconds", "seconds"), ("rate", "pairs/s")],
                                               left=1)]
    scores = ", ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items() if k != "n")
    lines += ["", f"scores: {scores}, clinical micro F1={result['clinical_micro_f1']:.4f}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meit.bench metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of report pairs (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-meteor", action="store_true")
    parser.add_argument("--bertscore", action="store_true", help="also time BERTScore (packaged MiniLM)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    result = run(args.n, args.seed, meteor=not args.no_meteor, bertscore=args.bertscore)
    print(json.dumps(result, indent=2) if args.json else format_result(result))
    return 0
