"""The encdec artifact: the same self-describing folder as an LLM artifact, with a decoder instead of an LLM.

``meit_model.json`` (format ``meit-model``, ``architecture: encdec``) holds the model config, the backbone
entry, the encoder contract and the library versions; ``encoder.safetensors``, ``decoder.safetensors``
(and ``finding_head.safetensors``) the weights; the tokenizer files the vocabulary built from the
training reports. ``MeitModel.from_pretrained`` reads the architecture and comes here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from meit.config import ModelConfig
from meit.data.contract import EncoderContract
from meit.errors import ConfigError, ModelError
from meit.models.encdec.decoders import build_decoder
from meit.models.loading import load_tokenizer
from meit.models.model_artifact import (
    ENCODER_FILE,
    FINDING_HEAD_FILE,
    LOAD_OVERRIDES,
    META_FILE,
    load_encoder_and_head,
    load_strict,
    module_states,
    read_meta,
    shared_meta,
)
from meit.publish import staged_folder

ARCHITECTURE = "encdec"
DECODER_FILE = "decoder.safetensors"


def artifact_architecture(directory: str | Path) -> str:
    """``encdec`` or ``llm`` (the default of artifacts that do not say), from ``meit_model.json``; ``llm`` when the
    file is missing or unreadable, so the LLM loader reports that with its own errors."""
    try:
        meta = json.loads((Path(directory) / META_FILE).read_text())
    except (OSError, ValueError):
        return "llm"
    return str(meta.get("architecture", "llm")) if isinstance(meta, dict) else "llm"


def save_encdec(model: Any, directory: str | Path, *, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the folder (safetensors only, published atomically); ``state_dict`` replaces the live tensors."""
    from safetensors.torch import save_file

    state_of = module_states(model, state_dict, copy_to_cpu=True)
    meta = {
        **shared_meta(model),
        "architecture": ARCHITECTURE,
        "vocab_size": len(model.tokenizer),
        "parameters": model.num_parameters(),
        "lora": "none",
        "llm_weights": None,
        "versions": {"torch": torch.__version__, "transformers": _transformers_version()},
    }
    with staged_folder(directory, "meit model", also_owned_if=(META_FILE,)) as out:
        save_file(state_of(model.encoder), str(out / ENCODER_FILE))
        save_file(state_of(model.decoder), str(out / DECODER_FILE))
        if model.finding_head is not None:
            save_file(state_of(model.finding_head), str(out / FINDING_HEAD_FILE))
        model.tokenizer.save_pretrained(out)
        (out / META_FILE).write_text(json.dumps(meta, indent=2))  # last: the folder is complete
    return Path(directory).expanduser()


def load_encdec(cls: Any, directory: str | Path, *, device: str | torch.device | None = None,
                **overrides: Any) -> Any:
    """Rebuild an encdec model from its folder alone (``overrides``: the load-time keys LLM artifacts take;
    ``dtype`` and ``max_length`` apply, the others have nothing to change here)."""
    from safetensors.torch import load_file

    folder = Path(directory)
    meta_file = folder / META_FILE
    meta = read_meta(folder)  # a meit artifact of a format this meit reads
    if meta.get("architecture") != ARCHITECTURE:
        raise ModelError(f"{meta_file} is not an encdec artifact (architecture {meta.get('architecture')!r})")
    bad = set(overrides) - LOAD_OVERRIDES
    if bad:
        raise ConfigError(f"cannot override {sorted(bad)} when loading an artifact (allowed: {sorted(LOAD_OVERRIDES)})")
    if overrides.get("quantization", "none") != "none":
        raise ConfigError("an encdec artifact cannot be loaded quantised (model.quantization must be none)")
    stored = {**meta["model_config"], "trust_remote_code": False}
    cfg = ModelConfig.model_validate({**stored, **{k: v for k, v in overrides.items() if k != "trust_remote_code"
                                                   and k != "gradient_checkpointing"}})
    contract = EncoderContract.from_dict(meta["encoder_contract"])
    tokenizer = load_tokenizer(str(folder))
    encoder, head, labels = load_encoder_and_head(folder, meta, meta_file, cfg, contract)
    decoder = build_decoder(cfg.llm, len(tokenizer), encoder.out_dim, cfg.encdec, tokenizer.pad_token_id)
    load_strict(decoder, load_file(str(folder / DECODER_FILE)), folder / DECODER_FILE)
    model = cls(cfg, encoder, decoder, tokenizer, finding_head=head, finding_labels=labels)
    model.trainable_parameter_groups("finetune", train_encoder=True)
    if cfg.dtype not in ("auto", "float32"):
        model.to(getattr(torch, cfg.dtype))
    if device is not None:
        model.to(device)
    model.eval()
    return model


def _transformers_version() -> str:
    import transformers

    return transformers.__version__
