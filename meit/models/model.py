"""MeitModel: ECG encoder → projector → fusion (prefix | kv) → causal LLM (+ LoRA)."""

from __future__ import annotations

import inspect
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

import meit
from meit.config import ModelConfig
from meit.errors import ConfigError, DataError, ModelError
from meit.findings import FINDINGS
from meit.models.backbones import BackboneSpec, resolve_backbone
from meit.models.encoders import (
    ECGEncoder,
    EncoderArtifactMeta,
    EncoderContract,
    build_encoder,
    load_encoder_checkpoint,
    read_encoder_metadata,
)
from meit.models.encoders.artifact import contract_overrides
from meit.models.fusion import KVSlotFusion, find_attention_modules, splice_prefix
from meit.models.loading import apply_lora, load_llm, load_tokenizer, quiet_peft_warnings, source_folder
from meit.models.projectors import build_projector

ARTIFACT_FORMAT = "meit-model"
ARTIFACT_VERSION = 1
META_FILE = "meit_model.json"
ENCODER_FILE = "encoder.safetensors"
PROJECTOR_FILE = "projector.safetensors"
FINDING_HEAD_FILE = "finding_head.safetensors"
ADAPTER_DIR = "adapter"
LLM_DIR = "llm"

#: the token the tiny tokenizers reserve for ECG positions
_ECG_TOKEN = "<ecg>"

#: ``model.encoder=auto``: take the encoder named by the ``model.encoder_checkpoint`` artifact
AUTO_ENCODER = "auto"
#: ModelConfig keys that are contract fields of the same name (normalisation and filtering)
_CONTRACT_KEYS = ("normalisation", "notch_hz", "bandpass", "bandpass_order", "baseline")


def _adopt_encoder_artifact(cfg: ModelConfig, meta: EncoderArtifactMeta) -> ModelConfig:
    """``cfg`` with the artifact's encoder name and contract; raise on any explicitly set key that differs.

    "Explicit" means present in the recipe or on the command line (pydantic's ``model_fields_set``); keys
    left unset (and ``model.encoder=auto``) take the artifact's values. The returned config names the
    resolved encoder, so a saved model reloads without the artifact.
    """
    given = cfg.model_fields_set
    c = meta.contract
    if c.leads != 12:
        raise ModelError(f"encoder checkpoint {meta.directory} expects {c.leads} leads; meit feeds 12-lead ECGs")
    conflicts = []
    if "encoder" in given and cfg.encoder not in (AUTO_ENCODER, meta.encoder):
        conflicts.append(f"model.encoder={cfg.encoder} (checkpoint: {meta.encoder})")
    if cfg.encoder_fs is not None and cfg.encoder_fs != c.fs:
        conflicts.append(f"model.encoder_fs={cfg.encoder_fs} (checkpoint: {c.fs})")
    if cfg.encoder_seconds is not None and float(cfg.encoder_seconds) != float(c.seconds):
        conflicts.append(f"model.encoder_seconds={cfg.encoder_seconds:g} (checkpoint: {c.seconds:g})")
    for key in _CONTRACT_KEYS:
        mine, theirs = getattr(cfg, key), getattr(c, key)
        if key in given and mine != theirs:
            conflicts.append(f"model.{key}={_recipe_value(mine)} (checkpoint: {_recipe_value(theirs)})")
    if conflicts:
        raise ModelError(
            f"model.encoder_checkpoint={meta.directory} holds encoder '{meta.encoder}' trained for {c.describe()}, "
            f"but the recipe sets {', '.join(conflicts)}. Set {contract_overrides(meta.encoder, c)} (or remove "
            f"those keys, or use model.encoder={AUTO_ENCODER}). To run the weights under another contract on "
            f"purpose, point model.encoder_checkpoint at {meta.weights} (no contract check)."
        )
    return cfg.model_copy(update={"encoder": meta.encoder, "encoder_fs": c.fs, "encoder_seconds": c.seconds,
                                  **{key: getattr(c, key) for key in _CONTRACT_KEYS}})


def _recipe_value(value: Any) -> str:
    """A contract value as it is written on the command line (``[0.67,40]``, ``null``, ``zscore``)."""
    if value is None:
        return "null"
    if isinstance(value, tuple | list):
        return "[" + ",".join(_recipe_value(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def contract_from_config(cfg: ModelConfig, *, data_fs: int, data_seconds: float) -> EncoderContract:
    """The encoder contract a model config declares (rate and length default to the data's)."""
    return EncoderContract(
        leads=12, fs=int(cfg.encoder_fs or data_fs), seconds=float(cfg.encoder_seconds or data_seconds),
        **{key: getattr(cfg, key) for key in _CONTRACT_KEYS},
    )


@dataclass
class MeitOutput(CausalLMOutputWithPast):
    """The LM output plus the findings-head loss (``None`` when no targets were given)."""

    lm_loss: torch.Tensor | None = None
    findings_loss: torch.Tensor | None = None
    finding_logits: torch.Tensor | None = None
    logit_positions: torch.Tensor | None = None  # set when ``logits`` cover only these sequence positions


#: normalised ECG tokens start at this fraction of the hidden-state scale and learn their gain from there.
#: Measured on SmolLM2 (kv): an untrained slot at the full scale raises the loss from 3.9 to 8.1, at 0.3 to
#: 4.2, at 0.1 to 3.93; but at 0.1 the LLM barely reads the ECG in a short run, at 0.3 and 0.5 it does
#: (docs/evaluation.md, grounding).
ECG_SCALE_AT_INIT = 0.5
#: the text whose hidden states set the scale of normalised ECG tokens (any ordinary report sentence)
_SCALE_TEXT = "Sinus rhythm, rate 72 bpm. Normal axis. Normal ECG."


@torch.no_grad()
def hidden_rms(hf: nn.Module, tokenizer: Any, fusion: str, attention_pattern: str) -> float:
    """Per-element RMS of what ECG tokens replace: input embeddings (prefix) or, averaged over layers, the
    attention modules' inputs (kv: the slot's hidden state after each layer's own input norm)."""
    ids = torch.tensor([tokenizer(_SCALE_TEXT, add_special_tokens=False)["input_ids"]],
                       device=hf.get_input_embeddings().weight.device)
    if fusion == "prefix":  # before any embedding scale (Gemma): encode_ecg applies that itself
        embedding = hf.get_input_embeddings()
        scale = getattr(embedding, "embed_scale", 1.0)
        rms = embedding(ids).float().pow(2).mean().sqrt() / (scale.float() if torch.is_tensor(scale) else scale)
        return float(rms)
    seen: list[float] = []

    def grab(module, args, kwargs):
        h = kwargs.get("hidden_states", args[0] if args else None)
        if isinstance(h, torch.Tensor):
            seen.append(float(h.float().pow(2).mean().sqrt()))

    handles = [m.register_forward_pre_hook(grab, with_kwargs=True)
               for m in find_attention_modules(hf, attention_pattern)]
    try:
        hf(input_ids=ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return float(np.mean(seen)) if seen else 1.0


def _is_peft(model: nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _placeholder_id(tokenizer) -> int:
    """A token id to put at ECG positions (never searched for: positions come from ``ecg_mask``)."""
    vocab = tokenizer.get_vocab()
    if _ECG_TOKEN in vocab:
        return int(vocab[_ECG_TOKEN])
    for candidate in (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None and candidate != tokenizer.pad_token_id:
            return int(candidate)
    return int(tokenizer.pad_token_id or 0)


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


class MeitModel(nn.Module):
    """The whole model. Build with :meth:`build`, reload an artifact with :meth:`from_pretrained`.

    Attributes: ``tokenizer`` (pad token set, left padding), ``backbone`` (:class:`BackboneSpec`),
    ``encoder`` (``.contract``), ``projector``, ``llm`` (transformers model, peft-wrapped when LoRA is
    on), ``num_ecg_tokens`` (prefix: N, kv: 1), ``ecg_placement`` ("inline" | "start"),
    ``ecg_placeholder_id``.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        backbone: BackboneSpec,
        encoder: ECGEncoder,
        projector: nn.Module,
        llm: nn.Module,
        tokenizer: Any,
        *,
        lora_state: Literal["adapter", "merged", "none"],
        finding_head: nn.Module | None = None,
        finding_labels: list[str] | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.encoder = encoder
        self.projector = projector
        self.llm = llm
        self.tokenizer = tokenizer
        self.lora_state = lora_state
        #: training-time probe of the encoder (multi-label findings); never feeds the LLM
        self.finding_head = finding_head
        self.finding_labels = list(finding_labels or [])
        self.fusion = cfg.fusion
        self.num_ecg_tokens = cfg.num_ecg_tokens if cfg.fusion == "prefix" else 1
        self.ecg_placement: Literal["start", "inline"] = "start" if cfg.fusion == "kv" else "inline"
        self.ecg_placeholder_id = _placeholder_id(tokenizer)
        hf = self.hf_model
        accepted = inspect.signature(hf.forward).parameters
        self._accepts_position_ids = "position_ids" in accepted
        self._accepts_logits_to_keep = "logits_to_keep" in accepted
        self._kv: KVSlotFusion | None = None
        if cfg.fusion == "kv":
            self._kv = KVSlotFusion(hf, backbone, cfg.kv_layers)
        gen = hf.generation_config
        if gen.pad_token_id is None:
            gen.pad_token_id = tokenizer.pad_token_id
        if gen.eos_token_id is None:
            gen.eos_token_id = tokenizer.eos_token_id

    # ------------------------------------------------------------------------------------------
    # construction

    @property
    def hf_model(self) -> nn.Module:
        """The transformers model (under peft's wrapper when LoRA is on)."""
        return self.llm.get_base_model() if _is_peft(self.llm) else self.llm

    def _kv_attention_modules(self) -> list[nn.Module]:
        """The attention module of every decoder layer (kv fusion only; for tests and inspection)."""
        if self._kv is None:
            raise ModelError("no kv fusion installed (model.fusion is 'prefix')")
        return list(self._kv.modules)

    @property
    def contract(self) -> EncoderContract:
        return self.encoder.contract

    @staticmethod
    def _llm_width(hf: nn.Module, fusion: str) -> int:
        if fusion == "prefix":
            return int(hf.get_input_embeddings().embedding_dim)
        return int(hf.config.get_text_config().hidden_size)

    @classmethod
    def build(cls, cfg: ModelConfig, *, data_fs: int, data_seconds: float) -> MeitModel:
        """Build encoder, projector, backbone (+ LoRA / quantisation) and install the fusion."""
        spec = resolve_backbone(cfg.llm).with_template(cfg.template)
        if cfg.quantization != "none" and not cfg.lora.enabled:
            raise ConfigError(
                f"model.quantization={cfg.quantization} needs LoRA (QLoRA): a quantised base cannot be fully "
                "fine-tuned; set model.lora.enabled=true or model.quantization=none"
            )
        # an encoder artifact folder decides the encoder and its contract (explicit conflicts are errors)
        artifact = read_encoder_metadata(cfg.encoder_checkpoint) if cfg.encoder_checkpoint else None
        encoder_kwargs: dict[str, Any] = {}
        if artifact is not None:
            cfg = _adopt_encoder_artifact(cfg, artifact)
            encoder_kwargs = dict(artifact.kwargs)
        elif cfg.encoder == AUTO_ENCODER:
            raise ConfigError(
                f"model.encoder={AUTO_ENCODER} takes the encoder from model.encoder_checkpoint, which must then be "
                f"an encoder artifact folder (with encoder.json); got {cfg.encoder_checkpoint!r}"
            )
        contract = contract_from_config(cfg, data_fs=data_fs, data_seconds=data_seconds)
        folder = source_folder(spec)
        tokenizer = load_tokenizer(folder, cfg.trust_remote_code)
        llm = load_llm(spec, cfg, folder)
        if cfg.lora.enabled:
            llm = apply_lora(llm, spec, cfg)
        encoder = build_encoder(cfg.encoder, contract, **encoder_kwargs)
        if cfg.encoder_checkpoint:
            load_encoder_checkpoint(encoder, cfg.encoder_checkpoint)
        hf = llm.get_base_model() if _is_peft(llm) else llm
        n_tokens = cfg.num_ecg_tokens if cfg.fusion == "prefix" else 1
        scale = ECG_SCALE_AT_INIT * hidden_rms(hf, tokenizer, cfg.fusion, spec.attention_pattern) \
            if cfg.projector_norm else 1.0
        projector = build_projector(cfg.projector, encoder.out_dim, cls._llm_width(hf, cfg.fusion), n_tokens,
                                    normalised=cfg.projector_norm, output_rms=scale)
        labels = list(FINDINGS) if cfg.finding_head else []
        head = nn.Linear(encoder.out_dim, len(labels)) if labels else None
        model = cls(cfg, spec, encoder, projector, llm, tokenizer,
                    lora_state="adapter" if cfg.lora.enabled else "none", finding_head=head, finding_labels=labels)
        model.trainable_parameter_groups("finetune", train_encoder=True)
        if cfg.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        return model

    # ------------------------------------------------------------------------------------------
    # forward

    def encode_ecg(self, ecg: torch.Tensor) -> torch.Tensor:
        """ECG ``[B, 12, T]`` → projected tokens ``[B, num_ecg_tokens, D_llm]``."""
        return self._project(self._encoder_features(ecg))

    def _encoder_features(self, ecg: torch.Tensor) -> torch.Tensor:
        """The encoder's output for the projector: one pooled vector ``[B, 1, C]`` or time tokens ``[B, T', C]``."""
        self.encoder.check_input(ecg)
        param = next(self.encoder.parameters())
        # one ECG vector: let the encoder pool; the resampler always attends over the time tokens
        pooled = self.num_ecg_tokens == 1 and self.cfg.projector != "resampler"
        return self.encoder(ecg.to(device=param.device, dtype=param.dtype), pooled=pooled)

    def finding_logits(self, feats: torch.Tensor) -> torch.Tensor:
        """Findings-head logits ``[B, len(finding_labels)]`` from encoder features (time tokens are averaged)."""
        if self.finding_head is None:
            raise ModelError("this model has no findings head: build it with model.finding_head=true")
        return self.finding_head(feats.mean(dim=1))

    @staticmethod
    def findings_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy of findings-head logits against multi-hot ``targets``."""
        return F.binary_cross_entropy_with_logits(logits.float(), targets.to(logits.device, torch.float32))

    def _project(self, feats: torch.Tensor) -> torch.Tensor:
        tokens = self.projector(feats)
        if self.fusion == "prefix":
            # match the scale of the embedding module's output (Gemma multiplies inside it)
            scale = getattr(self.hf_model.get_input_embeddings(), "embed_scale", None)
            if scale is not None:
                tokens = tokens * scale.to(tokens.dtype) if torch.is_tensor(scale) else tokens * float(scale)
        return tokens

    def _check_masks(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, ecg_mask: torch.Tensor) -> None:
        if input_ids.shape != attention_mask.shape or input_ids.shape != ecg_mask.shape:
            raise DataError(
                f"input_ids {list(input_ids.shape)}, attention_mask {list(attention_mask.shape)} and ecg_mask "
                f"{list(ecg_mask.shape)} must have the same shape [batch, length]"
            )
        counts = ecg_mask.sum(dim=1)
        if bool((counts != self.num_ecg_tokens).any()):
            raise DataError(
                f"ecg_mask must mark exactly {self.num_ecg_tokens} position(s) per row "
                f"({self.fusion} fusion); got {counts.tolist()}"
            )
        if bool((ecg_mask & (attention_mask == 0)).any()):
            raise DataError("ecg_mask marks padding positions (attention_mask is 0 there)")
        if self.ecg_placement == "start":
            first = attention_mask.long().argmax(dim=1)
            slot = ecg_mask.long().argmax(dim=1)
            if bool((first != slot).any()):
                raise DataError(
                    "kv fusion: the ECG slot must be the first non-padding position of each row "
                    f"(first attended positions {first.tolist()}, slots at {slot.tolist()})"
                )

    @staticmethod
    def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
        """Positions counted over attended tokens (left or right padding alike; pads get 0)."""
        pos = attention_mask.long().cumsum(-1) - 1
        return pos.masked_fill(attention_mask == 0, 0)

    def _llm_inputs(self, ecg, input_ids, attention_mask, ecg_mask, *, generating: bool,
                    feats: torch.Tensor | None = None) -> dict[str, Any]:
        ecg_mask = ecg_mask.to(device=input_ids.device, dtype=torch.bool)
        self._check_masks(input_ids, attention_mask, ecg_mask)
        tokens = self._project(self._encoder_features(ecg) if feats is None else feats)
        inputs: dict[str, Any] = {"attention_mask": attention_mask}
        if self.fusion == "prefix":
            embeds = self.llm.get_input_embeddings()(input_ids)
            inputs["inputs_embeds"] = splice_prefix(embeds, tokens, ecg_mask)
            if generating:
                inputs["input_ids"] = input_ids
        else:
            assert self._kv is not None
            self._kv.set(tokens, ecg_mask, prefill_only=generating)
            inputs["input_ids"] = input_ids
        if not generating and self._accepts_position_ids:
            inputs["position_ids"] = self.position_ids(attention_mask)
        return inputs

    def forward(
        self,
        ecg: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        ecg_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        finding_targets: torch.Tensor | None = None,
        findings_weight: float = 1.0,
        labelled_logits_only: bool = False,
    ) -> MeitOutput:
        """LM logits and loss; with ``finding_targets`` also the findings-head loss (``loss`` = LM +
        ``findings_weight`` × findings). Without ``input_ids`` only the encoder and its head run (the
        ``encoder`` training stage): ``loss`` is the findings loss alone.

        ``labelled_logits_only`` (training): the LM head runs only at positions that predict a label, so
        ``logits`` is ``[B, K, V]`` at ``logit_positions``. The head is a fifth of SmolLM2's step and most of
        Gemma 3's (262k vocabulary); prompt positions need no logits. Backbones whose forward has no
        ``logits_to_keep`` compute them all, as without the flag."""
        feats = self._encoder_features(ecg)
        head_logits = aux = None
        if finding_targets is not None or (input_ids is None and self.finding_head is not None):
            head_logits = self.finding_logits(feats)
        if finding_targets is not None:
            aux = self.findings_loss(head_logits, finding_targets)
        if input_ids is None:
            if head_logits is None:
                raise DataError("forward without input_ids runs the findings head (encoder stage): the model has "
                                "none (model.finding_head=false)")
            return MeitOutput(loss=aux, findings_loss=aux, finding_logits=head_logits)
        if attention_mask is None or ecg_mask is None:
            raise DataError("forward with input_ids needs attention_mask and ecg_mask")
        inputs = self._llm_inputs(ecg, input_ids, attention_mask, ecg_mask, generating=False, feats=feats)
        positions = None
        if labels is not None and labelled_logits_only and self._accepts_logits_to_keep:
            positions = self.label_positions(labels, attention_mask, ecg_mask)
            if positions.numel():
                inputs["logits_to_keep"] = positions
            else:  # nothing labelled: full logits and the zero loss
                positions = None
        try:
            out = self.llm(**inputs, use_cache=False)
        finally:
            # activation checkpointing re-runs the hooks during backward: keep the slot until then
            if self._kv is not None and not (self.training and self._checkpointing()):
                self._kv.clear()
        logits = out.logits
        lm_loss = loss = None
        if labels is not None:
            lm_loss = loss = self.causal_lm_loss(logits, labels, attention_mask, ecg_mask, positions=positions)
            if aux is not None:
                loss = lm_loss + findings_weight * aux
        return MeitOutput(loss=loss, logits=logits, lm_loss=lm_loss, findings_loss=aux, finding_logits=head_logits,
                          logit_positions=positions)

    @staticmethod
    def _scored_labels(labels: torch.Tensor, attention_mask: torch.Tensor, ecg_mask: torch.Tensor) -> torch.Tensor:
        """``labels`` with padding and ECG positions set to -100 (the loss never scores them)."""
        ignore = (attention_mask.to(labels.device) == 0) | ecg_mask.to(device=labels.device, dtype=torch.bool)
        return labels.masked_fill(ignore, -100)

    @classmethod
    def label_positions(
        cls, labels: torch.Tensor, attention_mask: torch.Tensor, ecg_mask: torch.Tensor
    ) -> torch.Tensor:
        """Sequence positions whose next token is labelled in at least one row (one index set for the batch)."""
        scored = cls._scored_labels(labels, attention_mask, ecg_mask)[:, 1:] != -100
        return scored.any(dim=0).nonzero().flatten()

    @staticmethod
    def causal_lm_loss(
        logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor, ecg_mask: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean next-token cross-entropy over labelled positions (-100, padding and ECG positions ignored).

        ``positions``: the sequence positions ``logits`` were computed at (see ``label_positions``); each
        predicts the token after it. ``None``: logits cover every position."""
        labels = MeitModel._scored_labels(labels.to(logits.device), attention_mask, ecg_mask)
        if positions is None:
            shift_logits = logits[:, :-1].float()
            shift_labels = labels[:, 1:]
        else:
            shift_logits = logits.float()
            shift_labels = labels[:, positions.to(labels.device) + 1]
        if not bool((shift_labels != -100).any()):
            return shift_logits.sum() * 0.0
        return F.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100
        )

    # ------------------------------------------------------------------------------------------
    # generation

    @torch.no_grad()
    def generate(
        self,
        ecg: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        ecg_mask: torch.Tensor,
        **generation_kwargs: Any,
    ) -> torch.Tensor:
        """Generate continuations; returns ONLY the new tokens ``[B × num_return_sequences, new]``.

        Greedy by default; any ``transformers`` generation option works (beams, sampling, …).
        """
        kwargs = {"do_sample": False, "num_beams": 1}
        kwargs.update(generation_kwargs)
        if "max_new_tokens" not in kwargs and "max_length" not in kwargs:
            kwargs["max_new_tokens"] = 64
        gen_cfg = self.hf_model.generation_config
        kwargs.setdefault("pad_token_id", gen_cfg.pad_token_id if gen_cfg.pad_token_id is not None
                          else self.tokenizer.pad_token_id)
        kwargs.setdefault("eos_token_id", gen_cfg.eos_token_id if gen_cfg.eos_token_id is not None
                          else self.tokenizer.eos_token_id)
        was_training = self.training
        self.eval()
        try:
            inputs = self._llm_inputs(ecg, input_ids, attention_mask, ecg_mask, generating=True)
            out = self.llm.generate(**inputs, **kwargs)
        finally:
            if self._kv is not None:
                self._kv.clear()
            self.train(was_training)
        sequences = out.sequences if hasattr(out, "sequences") else out
        return sequences[:, input_ids.shape[1]:]

    # ------------------------------------------------------------------------------------------
    # training helpers

    def _partition(self) -> dict[str, list[nn.Parameter]]:
        lora, base = [], []
        for name, p in self.llm.named_parameters():
            (lora if "lora_" in name else base).append(p)
        parts = {
            "encoder": list(self.encoder.parameters()),
            "projector": list(self.projector.parameters()),
            "lora": lora,
            "base": base,
        }
        if self.finding_head is not None:
            parts["finding_head"] = list(self.finding_head.parameters())
        return parts

    def trainable_parameter_groups(
        self, stage: Literal["encoder", "align", "finetune"], train_encoder: bool = True,
        train_finding_head: bool | None = None,
    ) -> dict[str, list[nn.Parameter]]:
        """Set ``requires_grad`` for a training stage and return the trainable parameters by part.

        encoder: the encoder and its findings head only (no LLM). align: projector. finetune: LoRA +
        projector (+ encoder when ``train_encoder``). The findings head trains in the encoder stage, elsewhere
        only when ``train_finding_head`` (an auxiliary loss uses it: an unused trainable part stalls DDP).
        Without LoRA (full fine-tune) the whole base LLM ("base") instead of LoRA. Keys "encoder", "projector",
        "lora" are always present ("base" too for a full fine-tune, "finding_head" with a head); frozen parts map
        to empty lists.
        """
        if stage not in ("encoder", "align", "finetune"):
            raise ConfigError(f"train.stage must be 'encoder', 'align' or 'finetune', got {stage!r}")
        if stage == "encoder" and self.finding_head is None:
            raise ConfigError("train.stage=encoder trains the encoder through its findings head: "
                              "set model.finding_head=true")
        full_ft = self.lora_state == "none"
        finetune = stage == "finetune"
        train = {
            "encoder": stage == "encoder" or (finetune and train_encoder),
            "projector": stage != "encoder",
            "finding_head": stage == "encoder" if train_finding_head is None else train_finding_head,
            "lora": finetune and not full_ft,
            "base": finetune and full_ft,
        }
        parts = self._partition()
        for key, params in parts.items():
            for p in params:
                if train[key] and not p.is_floating_point():
                    raise ModelError(f"cannot train {key} parameters of dtype {p.dtype} (quantised base)")
                p.requires_grad_(train[key])
        groups = {key: (params if train[key] else []) for key, params in parts.items()}
        if not full_ft:
            groups.pop("base")
        if self.training:
            self.train(True)  # re-apply the frozen-encoder eval mode
        return groups

    def train(self, mode: bool = True) -> MeitModel:
        super().train(mode)
        # a frozen encoder keeps its BatchNorm statistics: run it in eval mode
        if mode and not any(p.requires_grad for p in self.encoder.parameters()):
            self.encoder.eval()
        return self

    def _checkpointing(self) -> bool:
        return any(getattr(m, "gradient_checkpointing", False) is True for m in self.hf_model.modules())

    def enable_gradient_checkpointing(self) -> None:
        """Activation checkpointing in every decoder layer (non-reentrant: the kv hooks re-run in backward)."""
        hf = self.hf_model
        if hasattr(hf, "activation_checkpointing_enable"):  # transformers >= 5.x name
            hf.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.hf_model.config.use_cache = False

    def num_parameters(self) -> dict[str, int]:
        return {k: sum(p.numel() for p in v) for k, v in self._partition().items()}

    # ------------------------------------------------------------------------------------------
    # artifact

    def _base_state_dict(self) -> dict[str, torch.Tensor]:
        """The LLM's own weights without LoRA tensors (peft's ``base_layer`` names unwrapped)."""
        state = {}
        for key, value in self.hf_model.state_dict().items():
            if "lora_" in key:
                continue
            state[key.replace(".base_layer.", ".")] = value
        return state

    def save_pretrained(
        self, directory: str | Path, merge_lora: bool = False, *, state_dict: dict[str, torch.Tensor] | None = None
    ) -> Path:
        """Write one self-describing folder (safetensors only). See ``docs/models.md``.

        ``merge_lora=True`` folds the LoRA update into the base weights and saves a plain LLM.
        ``state_dict`` (whole tensors under ``self.state_dict()`` names) is saved instead of the live
        tensors: a trainer whose live parameters are shards (FSDP2) gathers the state and passes it here.
        """
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        quantised = self.cfg.quantization != "none"
        if merge_lora and quantised:
            raise ModelError(
                "merge_lora into a quantised base is lossy and not supported: reload the artifact with "
                "model.quantization=none (MeitModel.from_pretrained(dir, quantization='none')) and merge that"
            )
        merged = merge_lora and self.lora_state == "adapter"
        if merged and state_dict is not None:
            raise ModelError("merge_lora with an explicit state_dict is not supported: save without merging, "
                             "reload with MeitModel.from_pretrained and merge that")
        lora_state = "merged" if merged else self.lora_state
        include_base = (
            not quantised and (self.backbone.is_tiny or self.lora_state in ("none", "merged") or merged)
        )
        prefixes = {id(m): f"{name}." for name, m in self.named_modules()}

        def state_of(module: nn.Module) -> dict[str, torch.Tensor]:
            """``module``'s own state: live, or cut out of ``state_dict``."""
            if state_dict is None:
                return _cpu_state(module)
            prefix = prefixes[id(module)]
            part = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
            missing = sorted(set(module.state_dict()) - set(part))
            if missing:
                raise ModelError(f"save_pretrained: state_dict lacks {len(missing)} tensors of '{prefix[:-1]}', "
                                 f"e.g. {missing[:3]}")
            return part

        for stale in (ADAPTER_DIR, LLM_DIR):
            if (out / stale).exists():
                shutil.rmtree(out / stale)
        (out / META_FILE).unlink(missing_ok=True)

        save_file(state_of(self.encoder), str(out / ENCODER_FILE))
        save_file(state_of(self.projector), str(out / PROJECTOR_FILE))
        (out / FINDING_HEAD_FILE).unlink(missing_ok=True)
        if self.finding_head is not None:
            save_file(state_of(self.finding_head), str(out / FINDING_HEAD_FILE))
        self.tokenizer.save_pretrained(out)
        if lora_state == "adapter":
            given = {} if state_dict is None else {"state_dict": state_of(self.llm)}
            self.llm.save_pretrained(out / ADAPTER_DIR, safe_serialization=True, **given)
        if include_base:
            if merged:
                self.llm.merge_adapter()
            try:  # save while merged (the state holds views of the live weights), then unmerge
                if state_dict is None:
                    base = self._base_state_dict()
                else:  # the same selection as _base_state_dict, from the given tensors
                    base = {k.replace(".base_layer.", "."): v for k, v in state_of(self.hf_model).items()
                            if "lora_" not in k}
                state = {k: v.detach().to("cpu").contiguous() for k, v in base.items()}
                self.hf_model.save_pretrained(out / LLM_DIR, state_dict=state, safe_serialization=True)
            finally:
                if merged:
                    self.llm.unmerge_adapter()
        meta = {
            "format": ARTIFACT_FORMAT,
            "format_version": ARTIFACT_VERSION,
            "meit_version": meit.__version__,
            "model_config": self.cfg.model_dump(mode="json"),
            "backbone": self.backbone.to_dict(),
            "encoder_contract": self.contract.to_dict(),
            "encoder_out_dim": self.encoder.out_dim,
            "num_ecg_tokens": self.num_ecg_tokens,
            "finding_labels": self.finding_labels,
            "ecg_placement": self.ecg_placement,
            "ecg_placeholder_id": self.ecg_placeholder_id,
            "lora": lora_state,
            "llm_weights": LLM_DIR if include_base else None,
            "versions": _versions(),
        }
        (out / META_FILE).write_text(json.dumps(meta, indent=2))
        return out

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device | None = None, **overrides: Any
    ) -> MeitModel:
        """Reload an artifact written by :meth:`save_pretrained` from its folder alone.

        ``overrides`` replace ModelConfig fields at load time (e.g. ``quantization="4bit"``, ``dtype=…``,
        ``gradient_checkpointing=True``); architecture fields cannot change.
        """
        from safetensors.torch import load_file

        folder = Path(directory)
        meta_file = folder / META_FILE
        if not meta_file.is_file():
            raise ModelError(f"{folder} is not a meit model artifact (no {META_FILE})")
        try:
            meta = json.loads(meta_file.read_text())
        except ValueError as err:
            raise ModelError(f"{meta_file} is not valid JSON: {err}") from err
        if meta.get("format") != ARTIFACT_FORMAT or meta.get("format_version", 0) > ARTIFACT_VERSION:
            raise ModelError(f"{meta_file}: unsupported artifact format {meta.get('format')!r} "
                             f"v{meta.get('format_version')} (this meit reads v{ARTIFACT_VERSION})")
        allowed = {"quantization", "dtype", "gradient_checkpointing", "trust_remote_code", "max_length"}
        bad = set(overrides) - allowed
        if bad:
            raise ConfigError(f"cannot override {sorted(bad)} when loading an artifact (allowed: {sorted(allowed)})")
        cfg = ModelConfig.model_validate({**meta["model_config"], **overrides})
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
        encoder = build_encoder(cfg.encoder, contract)
        _load_strict(encoder, load_file(str(folder / ENCODER_FILE)), folder / ENCODER_FILE)
        hf = llm.get_base_model() if _is_peft(llm) else llm
        projector = build_projector(cfg.projector, encoder.out_dim, cls._llm_width(hf, cfg.fusion),
                                    int(meta["num_ecg_tokens"]), normalised=cfg.projector_norm)
        _load_strict(projector, load_file(str(folder / PROJECTOR_FILE)), folder / PROJECTOR_FILE)
        labels = list(meta.get("finding_labels") or [])
        head = None
        if cfg.finding_head:
            if not labels or not (folder / FINDING_HEAD_FILE).is_file():
                raise ModelError(f"{meta_file} declares model.finding_head but {folder} lacks {FINDING_HEAD_FILE} "
                                 "or finding_labels")
            head = nn.Linear(encoder.out_dim, len(labels))
            _load_strict(head, load_file(str(folder / FINDING_HEAD_FILE)), folder / FINDING_HEAD_FILE)
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


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"{where} does not fit the configured module: missing {missing}, unexpected {unexpected}")


def _versions() -> dict[str, str]:
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
