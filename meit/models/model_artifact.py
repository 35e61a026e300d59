"""The model artifact: one self-describing folder (safetensors only) that reloads from itself alone.

``meit_model.json`` names the format, the model config, the backbone entry, the encoder contract and the
library versions; the encoder, projector and findings head are safetensors files; the LLM is a peft adapter
(``adapter/``) and, when the base cannot be re-created from its source (tiny, merged or fully fine-tuned),
its weights (``llm/``). See ``docs/models.md``. Writing goes through ``meit.publish.staged_folder``: a crash
mid-save leaves the previous artifact, and a folder that is not a meit model is never replaced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import meit
from meit.config import ModelConfig
from meit.data.contract import EncoderContract
from meit.errors import ConfigError, ModelError
from meit.models.backbones import BackboneSpec
from meit.models.encoders import build_encoder
from meit.models.encoders.artifact import state_fit_problems
from meit.models.loading import is_peft, load_llm, load_tokenizer, quiet_peft_warnings
from meit.models.projectors import build_projector, encoder_pools
from meit.publish import staged_folder

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = "meit-model"
ARTIFACT_VERSION = 1
META_FILE = "meit_model.json"
ENCODER_FILE = "encoder.safetensors"
PROJECTOR_FILE = "projector.safetensors"
FINDING_HEAD_FILE = "finding_head.safetensors"
ADAPTER_DIR = "adapter"
#: ModelConfig fields a reload may change (how the weights are held and run, not what they are)
LOAD_OVERRIDES = frozenset({"quantization", "dtype", "gradient_checkpointing", "trust_remote_code", "max_length"})
LLM_DIR = "llm"



def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}




def module_states(model: nn.Module, state_dict: dict[str, torch.Tensor] | None, *, copy_to_cpu: bool = False
                  ) -> Callable[[nn.Module], dict[str, torch.Tensor]]:
    """``state_of(module)``: a submodule's own state, live (on CPU) or cut out of ``state_dict`` (whole-model keys;
    as given, or detached contiguous CPU copies with ``copy_to_cpu``; copying broke the FSDP2 final-save test)."""
    prefixes = {id(m): f"{name}." for name, m in model.named_modules()}

    def state_of(module: nn.Module) -> dict[str, torch.Tensor]:
        if state_dict is None:
            return cpu_state(module)
        prefix = prefixes[id(module)]
        part = {k[len(prefix):]: v.detach().to("cpu").contiguous() if copy_to_cpu else v
                for k, v in state_dict.items() if k.startswith(prefix)}
        missing = sorted(set(module.state_dict()) - set(part))
        if missing:
            raise ModelError(f"save_pretrained: state_dict lacks {len(missing)} tensors of '{prefix[:-1]}', "
                             f"e.g. {missing[:3]}")
        return part

    return state_of


def shared_meta(model: Any) -> dict[str, Any]:
    """The ``meit_model.json`` fields every artifact kind writes (the LLM model and the encdec baseline)."""
    return {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "meit_version": meit.__version__,
        "model_config": model.cfg.model_dump(mode="json"),
        "backbone": model.backbone.to_dict(),
        "encoder_contract": model.contract.to_dict(),
        "encoder_out_dim": model.encoder.out_dim,
        # the builder's settings (e.g. MERL's swap_avl_avf): a rebuild with defaults could differ silently
        "encoder_kwargs": dict(getattr(model.encoder, "builder_kwargs", {}) or {}),
        "num_ecg_tokens": model.num_ecg_tokens,
        "finding_labels": model.finding_labels,
        "ecg_placement": model.ecg_placement,
        "ecg_placeholder_id": model.ecg_placeholder_id,
    }


def base_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LLM's own weights without LoRA tensors (peft's ``base_layer`` names unwrapped)."""
    state = {}
    for key, value in model.hf_model.state_dict().items():
        if "lora_" in key:
            continue
        state[key.replace(".base_layer.", ".")] = value
    return state

def save_model(
    model: Any, directory: str | Path, merge_lora: bool = False, *, state_dict: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write one self-describing folder (safetensors only). See ``docs/models.md``.

    ``merge_lora=True`` folds the LoRA update into the base weights and saves a plain LLM.
    ``state_dict`` (whole tensors under ``model.state_dict()`` names) is saved instead of the live
    tensors: a trainer whose live parameters are shards (FSDP2) gathers the state and passes it here.
    """
    from safetensors.torch import save_file

    quantised = model.cfg.quantization != "none"
    if merge_lora and quantised:
        raise ModelError(
            "merge_lora into a quantised base is lossy and not supported: reload the artifact with "
            "model.quantization=none (MeitModel.from_pretrained(dir, quantization='none')) and merge that"
        )
    merged = merge_lora and model.lora_state == "adapter"
    if merged and state_dict is not None:
        raise ModelError("merge_lora with an explicit state_dict is not supported: save without merging, "
                         "reload with MeitModel.from_pretrained and merge that")
    lora_state = "merged" if merged else model.lora_state
    include_base = (
        not quantised and (model.backbone.is_tiny or model.lora_state in ("none", "merged") or merged)
    )
    state_of = module_states(model, state_dict)
    meta = {
        **shared_meta(model),
        "lora": lora_state,
        "llm_weights": LLM_DIR if include_base else None,
        "versions": _versions(),
    }
    with staged_folder(directory, "meit model", also_owned_if=(META_FILE,)) as out:
        save_file(state_of(model.encoder), str(out / ENCODER_FILE))
        save_file(state_of(model.projector), str(out / PROJECTOR_FILE))
        if model.finding_head is not None:
            save_file(state_of(model.finding_head), str(out / FINDING_HEAD_FILE))
        model.tokenizer.save_pretrained(out)
        if lora_state == "adapter":
            given = {} if state_dict is None else {"state_dict": state_of(model.llm)}
            model.llm.save_pretrained(out / ADAPTER_DIR, safe_serialization=True, **given)
        if include_base:
            if merged:
                model.llm.merge_adapter()
            try:  # save while merged (the state holds views of the live weights), then unmerge
                if state_dict is None:
                    base = base_state_dict(model)
                else:  # the same selection as base_state_dict, from the given tensors
                    base = {k.replace(".base_layer.", "."): v for k, v in state_of(model.hf_model).items()
                            if "lora_" not in k}
                state = {k: v.detach().to("cpu").contiguous() for k, v in base.items()}
                model.hf_model.save_pretrained(out / LLM_DIR, state_dict=state, safe_serialization=True)
            finally:
                if merged:
                    model.llm.unmerge_adapter()
        (out / META_FILE).write_text(json.dumps(meta, indent=2))
    return Path(directory).expanduser()


def load_model(
    cls: Any, directory: str | Path, *, device: str | torch.device | None = None, **overrides: Any
) -> Any:
    """Reload an artifact written by :meth:`save_pretrained` from its folder alone.

    ``overrides`` replace ModelConfig fields at load time (e.g. ``quantization="4bit"``, ``dtype=…``,
    ``gradient_checkpointing=True``); architecture fields cannot change.
    """
    from safetensors.torch import load_file

    folder = Path(directory)
    meta_file = folder / META_FILE
    meta = read_meta(folder)
    bad = set(overrides) - LOAD_OVERRIDES
    if bad:
        raise ConfigError(f"cannot override {sorted(bad)} when loading an artifact (allowed: {sorted(LOAD_OVERRIDES)})")
    stored = dict(meta["model_config"])
    if stored.get("trust_remote_code") and not overrides.get("trust_remote_code"):
        log.warning("%s was built with trust_remote_code=True; it is loaded without it. Running the backbone's own "
                    "code is your decision: pass --trust-remote-code (trust_remote_code=True) if you trust it", folder)
    # a folder never switches on remote code by itself: only the caller's explicit override can
    stored["trust_remote_code"] = False
    cfg = ModelConfig.model_validate({**stored, **overrides})
    spec = BackboneSpec.from_dict(meta["backbone"])
    contract = EncoderContract.from_dict(meta["encoder_contract"])
    lora_state = meta.get("lora", "none")

    tokenizer = load_tokenizer(str(folder), cfg.trust_remote_code)
    base_folder = str(folder / meta["llm_weights"]) if meta.get("llm_weights") else None
    llm = load_llm(spec, cfg, base_folder)
    if lora_state == "adapter":
        from peft import PeftModel, prepare_model_for_kbit_training

        if cfg.quantization != "none":
            llm = prepare_model_for_kbit_training(
                llm, use_gradient_checkpointing=cfg.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        with quiet_peft_warnings():
            llm = PeftModel.from_pretrained(llm, str(folder / ADAPTER_DIR), is_trainable=True)
    encoder, head, labels = load_encoder_and_head(folder, meta, meta_file, cfg, contract)
    hf = llm.get_base_model() if is_peft(llm) else llm
    projector = build_projector(cfg.projector, encoder.out_dim, cls._llm_width(hf, cfg.fusion),
                                int(meta["num_ecg_tokens"]), normalised=cfg.projector_norm)
    load_strict(projector, load_file(str(folder / PROJECTOR_FILE)), folder / PROJECTOR_FILE)
    model = cls(cfg, spec, encoder, projector, llm, tokenizer,
                lora_state="none" if lora_state == "none" else lora_state, finding_head=head,
                finding_labels=labels)
    model.ecg_placeholder_id = int(meta.get("ecg_placeholder_id", model.ecg_placeholder_id))
    model.trainable_parameter_groups("finetune", train_encoder=True)
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    if device is not None:
        model.to(device)
    model.eval()
    return model


def read_meta(folder: Path) -> dict[str, Any]:
    """``meit_model.json`` of an artifact folder, checked to be a format this meit reads."""
    meta_file = folder / META_FILE
    if not meta_file.is_file():
        raise ModelError(f"{folder} is not a meit model artifact (no {META_FILE})")
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as err:
        raise ModelError(f"{meta_file} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != ARTIFACT_FORMAT or \
            meta.get("format_version", 0) > ARTIFACT_VERSION:
        got = (meta.get("format"), meta.get("format_version")) if isinstance(meta, dict) else (None, None)
        raise ModelError(f"{meta_file}: unsupported artifact format {got[0]!r} v{got[1]} (this meit reads "
                         f"v{ARTIFACT_VERSION})")
    return meta


class FindingsReader(nn.Module):
    """A report model's encoder and findings head, without its LLM or decoder: ``forward(ecg) -> logits``, what the
    encoder alone reads in an ECG, scored like a classifier (``meit classify eval``), so a report model that ignores
    its ECG can be told apart from one whose encoder never learnt to read it."""

    def __init__(self, encoder: nn.Module, head: nn.Module, labels: list[str], pooled: bool) -> None:
        super().__init__()
        self.encoder, self.head, self.labels = encoder, head, list(labels)
        self.pooled = pooled  # the features the head was trained on: the pooled vector or the mean of the time tokens

    def forward(self, ecg: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ecg, pooled=self.pooled).mean(dim=1))


def load_findings_reader(directory: str | Path) -> FindingsReader:
    """The encoder and findings head of a meit model artifact (LLM or encdec), read from safetensors alone."""
    folder = Path(directory).expanduser()
    meta = read_meta(folder)
    meta_file = folder / META_FILE
    cfg = ModelConfig.model_validate({**meta["model_config"], "trust_remote_code": False})
    if not cfg.finding_head:
        raise ModelError(f"{folder} has no findings head (trained with model.finding_head=false): its encoder has "
                         "nothing to be scored on by itself")
    contract = EncoderContract.from_dict(meta["encoder_contract"])
    encoder, head, labels = load_encoder_and_head(folder, meta, meta_file, cfg, contract)
    if head is None:  # load_encoder_and_head already refuses a declared head that is missing
        raise ModelError(f"{folder}: no findings head was loaded")
    # the encdec baseline's head reads the mean of the time tokens; the LLM model's what its projector reads
    pooled = meta.get("architecture") != "encdec" and encoder_pools(int(meta.get("num_ecg_tokens", 1)), cfg.projector)
    return FindingsReader(encoder, head, labels, pooled).eval()


def load_encoder_and_head(folder: Path, meta: dict[str, Any], meta_file: Path, cfg: ModelConfig,
                          contract: EncoderContract) -> tuple[nn.Module, nn.Module | None, list[str]]:
    """The encoder (``ENCODER_FILE``) and, when ``cfg.finding_head``, the findings head and its labels of an
    artifact folder: the part every meit model artifact (LLM or encdec) stores alike."""
    from safetensors.torch import load_file

    encoder_kwargs = meta.get("encoder_kwargs") or {}
    if not isinstance(encoder_kwargs, dict):
        raise ModelError(f"{meta_file}: encoder_kwargs must be a JSON object, got {type(encoder_kwargs).__name__}")
    encoder = build_encoder(cfg.encoder, contract, **encoder_kwargs)
    load_strict(encoder, load_file(str(folder / ENCODER_FILE)), folder / ENCODER_FILE)
    labels = list(meta.get("finding_labels") or [])
    head = None
    if cfg.finding_head:
        if not labels or not (folder / FINDING_HEAD_FILE).is_file():
            raise ModelError(f"{meta_file} declares model.finding_head but {folder} lacks {FINDING_HEAD_FILE} "
                             "or finding_labels")
        head = nn.Linear(encoder.out_dim, len(labels))
        load_strict(head, load_file(str(folder / FINDING_HEAD_FILE)), folder / FINDING_HEAD_FILE)
    return encoder, head, labels


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    """Load every tensor or fail with the keys and shapes that do not fit (never torch's raw size error)."""
    problem = state_fit_problems(module, state, where, role="model")
    if problem:
        raise ModelError(problem)
    module.load_state_dict(state, strict=True)


def _versions() -> dict[str, str]:
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
