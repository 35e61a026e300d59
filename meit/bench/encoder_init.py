"""Does a pretrained encoder speed up instruction tuning? ``python -m meit.bench encoder-init``.

Runs the same LoRA fine-tune twice — encoder from scratch, and encoder from a ``meit pretrain``
artifact — with validation loss every few steps, then reports how many steps the pretrained start
needs to reach the from-scratch run's final validation loss. Writes the curves (CSV + PNG) and prints
a table. By default: the quickstart recipe on the synthetic dataset the pretraining used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from meit.tables import format_table, write_csv


def steps_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    """The first evaluated step whose validation loss is at or below ``target`` (None if never)."""
    return next((step for step, loss in curve if loss <= target), None)


def interpolated_steps_to_reach(curve: list[tuple[int, float]], target: float) -> float | None:
    """Where the curve, linear between evaluations, first crosses ``target`` (None if never)."""
    previous: tuple[int, float] | None = None
    for step, loss in curve:
        if loss <= target:
            if previous is None or previous[1] == loss:
                return float(step)
            (s0, l0) = previous
            return s0 + (step - s0) * (l0 - target) / (l0 - loss)
        previous = (step, loss)
    return None


def fine_tune(recipe_file: Path, data: Path, out: Path, steps: int, eval_every: int, extra: list[str],
              reuse: bool = False) -> list:
    """The run's (step, validation loss) curve; with ``reuse``, read from a finished run's log instead."""
    from meit.config import load_recipe
    from meit.training import train
    from meit.training.logs import read_jsonl

    log = out / "logs" / "train.jsonl"
    if reuse and (out / "final").is_dir() and log.is_file():
        curve = [(r["step"], r["val_loss"]) for r in read_jsonl(log) if "val_loss" in r]
        if curve and curve[-1][0] == steps:
            return curve

    recipe = load_recipe(recipe_file, [f"data.path={data}", f"output_dir={out}", f"train.max_steps={steps}",
                                       f"train.eval_every={eval_every}", "train.sample_reports=0",
                                       "train.encoder_stage=null",  # compare the encoders' starting points
                                       "train.save_every=null", "train.trackers=[]", *extra])
    return list(train(recipe, progress=True).val_losses)


def plot_curves(curves: dict[str, list[tuple[int, float]]], target: float, path: Path,
                labels: dict[str, str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, curve in curves.items():
        ax.plot([s for s, _ in curve], [v for _, v in curve], marker="o", label=(labels or {}).get(label, label))
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label="from-scratch final")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation loss")
    ax.set_title("LoRA fine-tune: encoder from scratch vs pretrained")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meit.bench encoder-init", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", required=True, type=Path, help="final/ folder of `meit pretrain`")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset to fine-tune on")
    parser.add_argument("--recipe", type=Path, default=Path("recipes/quickstart.yaml"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_encoder_init"))
    parser.add_argument("--pretrained-override", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override for the pretrained run only, e.g. train.train_encoder=false")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs found under --out")
    parser.add_argument("overrides", nargs="*", help="recipe overrides applied to both runs")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    curves = {
        "scratch": fine_tune(args.recipe, args.data, args.out / "scratch", args.steps, args.eval_every,
                             args.overrides, args.reuse),
        "pretrained": fine_tune(args.recipe, args.data, args.out / "pretrained", args.steps, args.eval_every,
                                [*args.overrides, f"model.encoder_checkpoint={args.pretrained}",
                                 *args.pretrained_override], args.reuse),
    }
    target = curves["scratch"][-1][1]
    reached = steps_to_reach(curves["pretrained"], target)
    crossing = interpolated_steps_to_reach(curves["pretrained"], target)
    rows: list[dict[str, Any]] = [
        {"run": label, "step": step, "val_loss": round(loss, 4)} for label, curve in curves.items()
        for step, loss in curve
    ]
    write_csv(rows, args.out / "curves.csv")
    suffix = f" ({', '.join(args.pretrained_override)})" if args.pretrained_override else ""
    plot_curves(curves, target, args.out / "val_loss.png", {"scratch": "encoder from scratch",
                                                            "pretrained": f"pretrained encoder{suffix}"})
    summary = {
        "steps": args.steps,
        "scratch_final_val_loss": target,
        "pretrained_final_val_loss": curves["pretrained"][-1][1],
        "pretrained_steps_to_scratch_final": reached,
        "speedup": (args.steps / reached) if reached else None,
        "pretrained_steps_to_scratch_final_interpolated": crossing,
        "speedup_interpolated": (args.steps / crossing) if crossing else None,
        "pretrained": str(args.pretrained),
        "overrides": args.overrides,
        "pretrained_overrides": args.pretrained_override,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    table = [{"step": s, "scratch": f"{a:.4f}", "pretrained": f"{b:.4f}"}
             for (s, a), (_, b) in zip(curves["scratch"], curves["pretrained"], strict=True)]
    print(format_table(table, [("step", "step"), ("scratch", "val loss, scratch"),
                               ("pretrained", "val loss, pretrained encoder")]))
    print(f"\nfrom-scratch final validation loss {target:.4f} after {args.steps} steps; the pretrained encoder "
          f"reaches it at step {reached if reached is not None else 'never (within the run)'}"
          + (f" ({summary['speedup']:.2f}× fewer steps; crossing at step {crossing:.1f} between evaluations, "
             f"{summary['speedup_interpolated']:.2f}×)" if reached and crossing else ""))
    print(f"curves: {args.out / 'curves.csv'}, {args.out / 'val_loss.png'}")
    return 0
