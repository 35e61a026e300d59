"""Image vs signal classification, augmentation strength, denoising and two stages, at one training budget:
``python -m meit.bench classify --synth SYNTH_DATA [--real REAL_DATA] --out DIR [--steps 150 --batch-size 16]``.

On ``--synth`` (a prepared ``meit synth`` dataset, labels: the findings its SCP codes imply) every row trains on
the same records with the same budget: a 1D ResNet-18 on the signal; a ConvNeXt-atto on 3×4 paper pages without
augmentation, with scan/photo augmentation at strength 0.5 and 1, and at 0.5 with denoising. Each is scored on
clean test pages and on test pages degraded at strength 0.5 (every effect), beside its shuffled-ECG control.
With ``--real`` (prepared real PTB-XL records, labels: the five superclasses) it adds the signal model, the paper
model trained on the real records only, and Wang et al.'s two stages (first on the synthetic pages, then on the
real ones). Prints the table and writes ``DIR/results.md`` and ``DIR/results.json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meit.tables import markdown_table

SCAN = "{rotation: %s, perspective: %s, blur: %s, noise: %s, jpeg: %s, colour: %s, contrast: %s, shadow: %s, " \
       "crease: %s, marks: %s}"


def _all(strength: float) -> str:
    return SCAN % ((strength,) * 10)


@dataclass(frozen=True)
class Row:
    name: str
    data: str  # "synth" or "real"
    overrides: tuple[str, ...]
    stage1: bool = False


def _rows(image_size: str, signal_encoder: str = "resnet1d-18", image_encoder: str = "resnet18-image"
          ) -> list[Row]:
    signal = (f"ecg.encoder={signal_encoder}", "ecg.normalisation=zscore")
    paper = (f"ecg.encoder={image_encoder}", "ecg.normalisation=none", "ecg.image_mode=paper-3x4",
             f"ecg.image_size={image_size}")
    return [
        Row(f"signal ({signal_encoder})", "synth", signal),
        Row(f"paper ({image_encoder}), no augmentation", "synth", (*paper, "ecg.image_augment={}")),
        Row(f"paper ({image_encoder}), augmentation 0.5", "synth", (*paper, f"ecg.image_augment={_all(0.5)}")),
        Row(f"paper ({image_encoder}), augmentation 1.0", "synth", (*paper, f"ecg.image_augment={_all(1.0)}")),
        Row(f"paper ({image_encoder}), augmentation 0.5 + denoising", "synth",
            (*paper, f"ecg.image_augment={_all(0.5)}", "ecg.image_denoise=grid+flatten")),
        Row(f"signal ({signal_encoder})", "real", signal),
        Row(f"paper ({image_encoder}), aug 0.5 + denoising, real only", "real",
            (*paper, f"ecg.image_augment={_all(0.5)}", "ecg.image_denoise=grid+flatten")),
        Row(f"paper ({image_encoder}), aug 0.5 + denoising, synth → real (two stages)", "real",
            (*paper, f"ecg.image_augment={_all(0.5)}", "ecg.image_denoise=grid+flatten"), stage1=True),
    ]


def _interval(scores: dict[str, Any] | None, key: str = "") -> str:
    if not scores or scores.get(f"{key}macro_auroc") is None:
        return "n/a"
    low, high = scores.get(f"{key}macro_low"), scores.get(f"{key}macro_high")
    value = scores[f"{key}macro_auroc"]
    return f"{value:.3f} [{low:.3f}, {high:.3f}]" if low is not None else f"{value:.3f}"


def run_row(row: Row, data: dict[str, str], out: Path, steps: int, batch_size: int, bootstrap: int,
            progress: bool, test_split: str = "test") -> dict[str, Any]:
    from meit.classify.config import ClassifyRecipe
    from meit.classify.run import classify
    from meit.config import load_recipe

    slug = f"{row.data}-{len(list(out.glob(f'{row.data}-*')))}"
    labels = "scp-findings" if row.data == "synth" else "superclass"
    overrides = [f"data.path={data[row.data]}", f"output_dir={out / slug}", f"data.labels={labels}",
                 f"train.max_steps={steps}", f"train.batch_size={batch_size}", f"eval.bootstrap={bootstrap}",
                 f"data.test_split={test_split}", "train.log_every=10", *row.overrides]
    if any(o.startswith("ecg.image_mode=paper") for o in row.overrides):
        overrides.append(f"eval.degrade={_all(0.5)}")
    if row.stage1:
        overrides += [f"stage1.path={data['synth']}", f"stage1.max_steps={steps}", "stage1.labels=scp-findings"]
    recipe = load_recipe(None, overrides, schema=ClassifyRecipe)
    metrics = classify(recipe, progress=progress).metrics
    return {"row": row.name, "data": row.data, "folder": str(out / slug), "overrides": overrides, "metrics": metrics}


def table(results: list[dict[str, Any]]) -> str:
    """One row per run: data and test records, model, steps, s/step, macro-AUROC clean / control / scanned."""
    rows = []
    for r in results:
        m = r["metrics"]
        training = m["training"]
        rows.append([f"{r['data']} ({m['label_source']}, {m['clean']['records']} test)", r["row"],
                     " + ".join(str(t["steps"]) for t in training),
                     " / ".join(f"{t['seconds_per_step']:.2f}" for t in training),
                     _interval(m["clean"]), _interval(m["clean"]["shuffled_ecg"]), _interval(m.get("degraded"))])
    header = ["data (labels, test records)", "model", "steps", "s/step", "macro-AUROC, clean [95% CI]",
              "shuffled-ECG control", "macro-AUROC, scanned 0.5"]
    return markdown_table(header, rows, left=len(header))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meit.bench classify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--synth", required=True, help="prepared synthetic dataset (`meit synth` + `meit prep`)")
    parser.add_argument("--real", help="prepared real PTB-XL records (superclass rows)")
    parser.add_argument("--out", required=True, help="folder for the runs, results.md and results.json")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", default="[128,192]")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--only", nargs="*", type=int, help="row numbers (1-based) to run")
    parser.add_argument("--signal-encoder", default="resnet1d-18")
    parser.add_argument("--image-encoder", default="resnet18-image")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {"synth": args.synth, **({"real": args.real} if args.real else {})}
    rows = [r for r in _rows(args.image_size, args.signal_encoder, args.image_encoder) if r.data in data]
    if args.only:
        rows = [r for i, r in enumerate(rows, 1) if i in args.only]
    results = []
    for row in rows:
        print(f"== {row.data}: {row.name} ==", flush=True)
        results.append(run_row(row, data, out, args.steps, args.batch_size, args.bootstrap, not args.no_progress,
                               args.test_split))
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    (out / "results.md").write_text(
        f"# Classification: image vs signal\n\n`python -m meit.bench classify {' '.join(argv or [])}`\n\n{text}\n")
    print(text)
    return 0
