"""Every benchmark by name, behind one entry point: ``python -m meit.bench NAME [options…]``.

Each benchmark module exposes ``main(argv) -> int``; this table maps a name to that module and a
one-line description, and imports the module only when it runs, so that listing stays instant (the
benchmarks pull in torch and transformers). ``meit bench NAME …`` dispatches through it too.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PROG = "python -m meit.bench"


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str
    description: str

    def load(self) -> Callable[[list[str] | None], int]:
        """The module's ``main``, imported on demand: importing every benchmark up front costs seconds."""
        return importlib.import_module(self.module).main

    def run(self, argv: Sequence[str]) -> int:
        return int(self.load()(list(argv)) or 0)


#: in pipeline order: data, training, inference, scoring, then the whole-model studies
BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("synth", "meit.bench.synth", "synthetic generator throughput: records/s in memory and written"),
    Benchmark("prep", "meit.bench.prep", "preparation throughput and peak memory on synthetic 500 Hz records"),
    Benchmark("loader", "meit.bench.loader", "training data-loader throughput: samples/s per worker count"),
    Benchmark("render", "meit.bench.render", "ECG paper rendering, augmentation and GAF/RP/MTF encodings: images/s"),
    Benchmark("train-step", "meit.bench.train_step", "training-step overhead against the bare LLM; FLOPs and MFU"),
    Benchmark("scaling", "meit.bench.scaling", "training throughput and peak memory, 1 then N processes"),
    Benchmark("generation", "meit.bench.generation", "batched generation throughput: reports/s per batch size"),
    Benchmark("serve", "meit.bench.serve", "meit serve: requests/s, p50/p95 latency per concurrency, batching on/off"),
    Benchmark("metrics", "meit.bench.metrics", "report-metric timing on N synthetic report pairs"),
    Benchmark("verify", "meit.bench.verify",
              "reports checked against the waveform: measurement error, supported share, planted errors caught"),
    Benchmark("ptbxl-text", "meit.bench.ptbxl_text",
              "finding extractor vs PTB-XL's codes on real reports: F1 per finding, language, dev/held-out"),
    Benchmark("encoder-init", "meit.bench.encoder_init",
              "pretrained vs from-scratch encoder: steps to the same validation loss"),
    Benchmark("grounding", "meit.bench.grounding",
              "does the model read the ECG? learning curve, per-finding F1, shuffled/zeros controls"),
    Benchmark("classify", "meit.bench.classify",
              "image vs signal classification, augmentation strength, denoising, two stages: AUROC with CIs"),
    Benchmark("suite", "meit.bench.suite_cli", "train + evaluate every backbone of a suite YAML; tables and plots"),
    Benchmark("faults", "meit.bench.faults", "crashes and bad inputs: kill-and-rerun trials, corrupted records"),
)}


def listing() -> str:
    """One line per benchmark: name, then what it measures."""
    width = max(map(len, BENCHMARKS))
    return "\n".join(f"  {b.name:<{width}}  {b.description}" for b in BENCHMARKS.values())


def unknown(name: str) -> str:
    """The error for a name not in the table, naming the ones that are."""
    return f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv[0]`` with the rest as its options; no name, ``--list`` or ``--help`` print the table."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("--list", "-h", "--help"):
        print(f"usage: {PROG} NAME [options…]   ({PROG} NAME --help: that benchmark's options)\n\n"
              f"benchmarks:\n{listing()}")
        return 0
    name, rest = args[0], args[1:]
    if name not in BENCHMARKS:
        print(f"{PROG}: error: {unknown(name)}", file=sys.stderr)
        return 2
    from meit.errors import MeitError

    try:
        return BENCHMARKS[name].run(rest)
    except MeitError as err:  # as the meit command reports them: one line and its exit code, no traceback
        print(f"{PROG} {name}: error: {err}", file=sys.stderr)
        return err.exit_code
