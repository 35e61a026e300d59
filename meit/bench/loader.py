"""Data-loader throughput: ``python -m meit.bench loader [--data PREPARED] --workers 2``.

Iterates the training DataLoader exactly as ``meit train`` builds it (memory-mapped prepared dataset,
encoder transform, instruction formatting, tokenisation, collation) and prints samples/s, so that
data loading can be compared with the model step (the target is ≥ 1,000 samples/s with 2 workers).
Without ``--data`` it synthesises and prepares a dataset first (not timed).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from meit.synth.prepared import synthetic_prepared
from meit.tables import format_table


def measure(data: Path, llm: str, fs: int, workers: int, batch_size: int, epochs: int) -> dict[str, float]:
    from meit.config import load_recipe
    from meit.data.collator import EcgCollator
    from meit.training.setup import build_model, build_split_dataset

    recipe = load_recipe(None, [f"data.path={data}", f"model.llm={llm}", "model.encoder=resnet1d-tiny",
                                f"data.fs={fs}", "model.lora.r=4"])
    model = build_model(recipe)
    dataset = build_split_dataset(recipe, model, "train")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        collate_fn=EcgCollator(model.tokenizer.pad_token_id), persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(0))
    for _ in loader:  # warm-up epoch: worker start-up and page cache
        break
    samples, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            samples += batch["ecg"].shape[0]
    elapsed = time.perf_counter() - start
    return {"samples": samples, "seconds": round(elapsed, 3), "samples_per_s": round(samples / elapsed, 1),
            "workers": workers, "batch_size": batch_size, "fs": fs, "llm": llm}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meit.bench loader", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="prepared dataset (default: synthesise one)")
    parser.add_argument("--n", type=int, default=2000, help="records to synthesise when --data is not given")
    parser.add_argument("--source", default="records500", choices=["records100", "records500"])
    parser.add_argument("--fs", type=int, default=500, help="encoder input rate (the transform resamples)")
    parser.add_argument("--llm", default="smollm2-135m-instruct", help="backbone whose tokenizer/template is used")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or synthetic_prepared(Path(tmp), args.n, seed=0, source=args.source, workers=2,
                                               progress=False)
        results = [measure(data, args.llm, args.fs, w, args.batch_size, args.epochs) for w in args.workers]
    print(format_table(results, [("workers", "workers"), ("batch_size", "batch"), ("samples", "samples"),
                                 ("seconds", "seconds"), ("samples_per_s", "samples/s")]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0
