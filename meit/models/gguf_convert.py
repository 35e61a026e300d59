"""Dequantise a GGUF causal LM into a regular float32 safetensors folder (shared by the offline backbones).

transformers reads GGUF (``from_pretrained(..., gguf_file=...)``: config, dequantised tensors and the
tokenizer, including each family's tensor-name map and conventions such as Gemma's norm offset) but refuses
to ``save_pretrained`` such a model. So the loaded weights are moved into a freshly built model of the same
class, without the GGUF quantisation config, and saved once; later loads read the safetensors in < 1 s.
"""

from __future__ import annotations

from pathlib import Path

from meit.errors import ModelError


def convert_gguf(gguf: Path, out: Path, install_hint: str) -> None:
    """Write ``gguf`` as a float32 transformers folder (safetensors, tokenizer, generation config) to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = str(gguf.parent)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name)
    except ImportError as err:  # gguf missing
        raise ModelError(f"cannot read {gguf}: {err}; install with: {install_hint}") from err
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    cfg.dtype = torch.float32
    model = type(loaded)(cfg)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
