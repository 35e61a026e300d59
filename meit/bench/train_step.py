"""Framework overhead of a training step: ``python -m meit.bench train-step``.

Times a full meit training step (ECG encoder + projector + fused LLM with LoRA, forward, backward,
AdamW step) against the bare LLM with the same LoRA adapters on the same tokens (forward, backward,
AdamW step), interleaving the two so that machine noise hits both alike. It also counts the step's
FLOPs (``torch.utils.flop_counter``) and reports the model FLOP utilisation against this machine's
measured fp32 matmul ceiling.

Defaults are the quickstart configuration: SmolLM2-135M-Instruct, ``resnet1d-18`` at 100 Hz × 10 s,
MLP projector, kv fusion, LoRA r=16 α=32, batch 8 × 128 tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch


def matmul_ceiling(seconds: float = 2.0, sizes: tuple[int, ...] = (1024, 2048)) -> float:
    """Best sustained fp32 GEMM rate on this machine, in FLOP/s."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)  # warm-up
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / len(sizes):
            torch.mm(a, b)
            reps += 1
        elapsed = time.perf_counter() - start
        best = max(best, 2 * n**3 * reps / elapsed)
    return best


def _batch(model, batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    from meit.data.prompts import expects_bos

    g = torch.Generator().manual_seed(seed)
    vocab = len(model.tokenizer)
    ids = torch.randint(10, vocab, (batch, length), generator=g)
    attention = torch.ones(batch, length, dtype=torch.long)
    ecg_mask = torch.zeros(batch, length, dtype=torch.bool)
    # a tokenizer that starts every text with BOS (Gemma) gets it first, the kv slot right after it
    bos = int(expects_bos(model.tokenizer))
    if bos:
        ids[:, 0] = model.tokenizer.bos_token_id
    start = bos if model.ecg_placement == "start" else 1
    ecg_mask[:, start : start + model.num_ecg_tokens] = True
    ids[ecg_mask] = model.ecg_placeholder_id
    labels = ids.clone()
    labels[:, : length // 4] = -100  # prompt
    labels[ecg_mask] = -100
    c = model.encoder.contract
    ecg = torch.randn(batch, *c.input_shape, generator=g)  # a signal or an image contract
    return {"ecg": ecg, "input_ids": ids, "attention_mask": attention, "ecg_mask": ecg_mask, "labels": labels}


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def _full_step(model, optimizer, inputs, bf16: bool = False, all_logits: bool = False) -> None:
    with _autocast(bf16):  # as accelerate's mixed_precision=bf16 does: forward only
        out = model(**inputs, labelled_logits_only=not all_logits)  # as training does, unless asked
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _bare_step(model, optimizer, inputs, bf16: bool = False, all_logits: bool = False) -> None:
    positions = None if all_logits else model.label_positions(
        inputs["labels"], inputs["attention_mask"], inputs["ecg_mask"])
    with _autocast(bf16):
        out = model.llm(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                        position_ids=model.position_ids(inputs["attention_mask"]), use_cache=False,
                        logits_to_keep=0 if positions is None else positions)
    loss = model.causal_lm_loss(out.logits, inputs["labels"], inputs["attention_mask"], inputs["ecg_mask"],
                                positions=positions)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def _image_keys(args: argparse.Namespace) -> dict[str, Any]:
    """The image side of the model config: an image encoder (``--encoder convnext-atto-image``) reads a page or
    a signal encoding of ``--image-size`` (the step times the encoder on such images; rendering is the loader's)."""
    if args.image_mode == "none":
        return {}
    keys: dict[str, Any] = {"image_mode": args.image_mode, "normalisation": "none"}
    if args.image_size:
        keys["image_size"] = args.image_size[0] if len(args.image_size) == 1 else tuple(args.image_size)
    return keys


def run(args: argparse.Namespace) -> dict[str, Any]:
    from meit.config import ModelConfig
    from meit.models import MeitModel

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig(
        llm=args.llm, encoder=args.encoder, projector=args.projector, fusion=args.fusion,
        num_ecg_tokens=1 if args.fusion == "kv" else args.num_ecg_tokens,
        lora={"r": args.lora_r, "alpha": args.lora_alpha, "dropout": args.lora_dropout},
        gradient_checkpointing=args.gradient_checkpointing,
        **_image_keys(args),
    )
    model = MeitModel.build(cfg, data_fs=args.fs, data_seconds=args.seconds)
    groups = model.trainable_parameter_groups("finetune", train_encoder=True)
    model.train()
    params = [p for g in groups.values() for p in g]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    inputs = _batch(model, args.batch, args.length)
    tokens = args.batch * args.length

    full_flops = _flops(lambda: _full_step(model, optimizer, inputs, args.bf16, args.all_logits))
    bare_flops = _flops(lambda: _bare_step(model, optimizer, inputs, args.bf16, args.all_logits))
    full_times, bare_times = [], []
    # the ceiling is sampled between steps and the best kept: other processes only ever lower it
    ceilings = [matmul_ceiling(args.ceiling_seconds)]
    for i in range(args.steps + args.warmup):
        for name, fn, times in (("full", _full_step, full_times), ("bare", _bare_step, bare_times)):
            start = time.perf_counter()
            fn(model, optimizer, inputs, args.bf16, args.all_logits)
            elapsed = time.perf_counter() - start
            if i >= args.warmup:
                times.append(elapsed)
            if args.verbose:
                print(f"  step {i} {name}: {elapsed:.3f} s", file=sys.stderr)
        ceilings.append(matmul_ceiling(args.ceiling_seconds))
    ceiling = max(ceilings)
    # best of k: interference from other processes only ever adds time
    full_s, bare_s = min(full_times), min(bare_times)
    llm_params = sum(p.numel() for p in model.hf_model.parameters())
    result = {
        "config": {
            "llm": args.llm, "encoder": args.encoder, "fs": args.fs, "seconds": args.seconds,
            "projector": args.projector, "fusion": args.fusion, "lora_r": args.lora_r,
            "image": model.encoder.contract.describe() if args.image_mode != "none" else None,
            "batch": args.batch, "length": args.length, "threads": torch.get_num_threads(),
            "gradient_checkpointing": args.gradient_checkpointing, "steps": args.steps, "bf16": args.bf16,
            "all_logits": args.all_logits,
        },
        "full_step_s": full_s,
        "bare_llm_step_s": bare_s,
        "overhead_ratio": full_s / bare_s,
        "overhead_ratio_median": statistics.median(full_times) / statistics.median(bare_times),
        "flop_ratio": full_flops / bare_flops,
        "full_step_s_all": full_times,
        "bare_llm_step_s_all": bare_times,
        "tokens_per_s": tokens / full_s,
        "full_step_gflop": full_flops / 1e9,
        "bare_step_gflop": bare_flops / 1e9,
        "llm_params_m": llm_params / 1e6,
        "matmul_ceiling_gflops": ceiling / 1e9,
        "matmul_ceiling_samples_gflops": [c / 1e9 for c in ceilings],
        "mfu": full_flops / full_s / ceiling,
        "bare_mfu": bare_flops / bare_s / ceiling,
    }
    return result


def format_result(r: dict[str, Any]) -> str:
    c = r["config"]
    return "\n".join([
        f"config: {c['llm']} + {c['encoder']} reading "
        + (c["image"] if c.get("image") else f"{c['fs']} Hz × {c['seconds']:g} s") + f", {c['projector']} projector, "
        f"{c['fusion']} fusion, LoRA r={c['lora_r']}, batch {c['batch']} × {c['length']}, "
        f"{c['threads']} threads, {'bf16 autocast' if c.get('bf16') else 'fp32'}, best of {c['steps']} "
        "interleaved steps, "
        + ("logits at every position (--all-logits)" if c.get("all_logits") else
           "logits at labelled positions only (as training)"),
        f"full meit step      : {r['full_step_s']:.3f} s  ({r['tokens_per_s']:.0f} tokens/s, "
        f"{r['full_step_gflop']:.0f} GFLOP)",
        f"bare LLM step       : {r['bare_llm_step_s']:.3f} s  "
        f"({r['bare_step_gflop']:.0f} GFLOP, same LoRA, same tokens)",
        f"overhead ratio      : {r['overhead_ratio']:.3f}×  (target ≤ 1.15×; median of steps "
        f"{r['overhead_ratio_median']:.3f}×; FLOP ratio {r['flop_ratio']:.3f}×)",
        f"matmul ceiling      : {r['matmul_ceiling_gflops']:.0f} GFLOP/s (fp32 GEMM 1024²/2048², best of "
        f"{len(r['matmul_ceiling_samples_gflops'])} samples taken between steps)",
        f"model FLOP util.    : {100 * r['mfu']:.1f} % (full step), {100 * r['bare_mfu']:.1f} % (bare LLM)",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m meit.bench train-step", description=__doc__.split("\n\n")[0])
    p.add_argument("--llm", default="smollm2-135m-instruct")
    p.add_argument("--encoder", default="resnet1d-18")
    p.add_argument("--fs", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--image-mode", default="none",
                   help="the image an image encoder reads (paper-3x4, paper-6x2, paper-12x1, gaf, rp, mtf); use "
                        "with --encoder NAME-image")
    p.add_argument("--image-size", type=int, nargs="+", metavar="PX",
                   help="image size: one side, or height width (default: the mode's)")
    p.add_argument("--projector", default="mlp")
    p.add_argument("--fusion", default="kv", choices=["kv", "prefix"])
    p.add_argument("--num-ecg-tokens", type=int, default=1)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=float, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast around the forward (train.mixed_precision=bf16 on CPU); MFU stays against "
                        "the fp32 ceiling")
    p.add_argument("--all-logits", action="store_true",
                   help="compute the LM head at every position, not only where a label is predicted (what "
                        "training did before labelled_logits_only; the cost of a large vocabulary's head)")
    p.add_argument("--ceiling-seconds", type=float, default=2.0, help="duration of each matmul-ceiling sample")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    result = run(args)
    print(format_result(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0
