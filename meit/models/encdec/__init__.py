"""The non-LLM baseline (Bleich et al.): 1D ResNet encoder + word-level Transformer or LSTM decoder from scratch.

Selected by ``model.llm=encdec-transformer`` or ``encdec-lstm`` (``meit.config.ENCDEC_LLMS``); built and
reloaded through ``MeitModel.build`` / ``MeitModel.from_pretrained`` like every other model.
"""

from __future__ import annotations

from meit.models.encdec.artifact import ARCHITECTURE, artifact_architecture
from meit.models.encdec.model import EncDecModel, EncDecOutput
from meit.models.encdec.vocab import build_word_tokenizer

__all__ = ["ARCHITECTURE", "EncDecModel", "EncDecOutput", "artifact_architecture", "build_word_tokenizer"]
