"""Batched generation throughput: ``python -m meit.bench generation``.

Reports/s of greedy generation with the KV cache at several batch sizes, on the same model, the same
prompts and the same number of new tokens (``min_new_tokens = max_new_tokens`` so early EOS cannot
flatter a batch size). Default model: SmolLM2-135M-Instruct with kv fusion (untrained adapter).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from meit.tables import format_table


def main(argv: list[str] | None = None) -> int:
    from meit.config import ModelConfig
    from meit.data.collator import EcgCollator
    from meit.data.dataset import evaluation_instruction
    from meit.data.prompts import PromptFormat, encode_prompt
    from meit.models import MeitModel

    parser = argparse.ArgumentParser(prog="python -m meit.bench generation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="a trained artifact (default: a fresh model)")
    parser.add_argument("--llm", default="smollm2-135m-instruct")
    parser.add_argument("--fusion", default="kv", choices=["kv", "prefix"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--reports", type=int, default=16, help="reports generated per batch size")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    if args.checkpoint:
        model = MeitModel.from_pretrained(args.checkpoint)
    else:
        cfg = ModelConfig(llm=args.llm, encoder="resnet1d-18", fusion=args.fusion, lora={"r": 8, "alpha": 16})
        model = MeitModel.build(cfg, data_fs=100, data_seconds=10.0)
    model.eval()
    fmt = PromptFormat.from_model(model, 128)
    prompt = encode_prompt(model.tokenizer, fmt, evaluation_instruction())
    contract = model.encoder.contract
    collate = EcgCollator(model.tokenizer.pad_token_id, padding_side="left")
    results = []
    for size in args.batch_sizes:
        examples = [{"id": str(i), "report": "", "ecg": torch.randn(*contract.input_shape),
                     "input_ids": prompt.input_ids, "labels": prompt.labels, "ecg_mask": prompt.ecg_mask}
                    for i in range(size)]
        batch = collate(examples)
        kwargs = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens}
        model.generate(batch["ecg"], batch["input_ids"], batch["attention_mask"], batch["ecg_mask"],
                       max_new_tokens=2)  # warm-up
        done, start = 0, time.perf_counter()
        while done < args.reports:
            model.generate(batch["ecg"], batch["input_ids"], batch["attention_mask"], batch["ecg_mask"], **kwargs)
            done += size
        elapsed = time.perf_counter() - start
        results.append({"batch_size": size, "reports": done, "seconds": round(elapsed, 2),
                        "reports_per_s": round(done / elapsed, 3), "tokens_per_s": round(done * args.new_tokens
                                                                                         / elapsed, 1)})
    for r in results:
        r["speedup"] = f"{r['reports_per_s'] / results[0]['reports_per_s']:.2f}x"
    print(format_table(results, [("batch_size", "batch"), ("reports", "reports"), ("seconds", "seconds"),
                                 ("reports_per_s", "reports/s"), ("tokens_per_s", "tokens/s"),
                                 ("speedup", "vs first")]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0
