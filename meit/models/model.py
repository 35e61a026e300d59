"""MeitModel: ECG encoder → projector → fusion (prefix | kv) → causal LLM (+ LoRA)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from meit.config import ModelConfig
from meit.data.prompts import expects_bos
from meit.errors import ConfigError, DataError, ModelError
from meit.findings import FINDINGS
from meit.models.backbones import BackboneSpec, resolve_backbone
from meit.models.encdec import ARCHITECTURE as ENCDEC_ARCHITECTURE
from meit.models.encdec import EncDecModel, artifact_architecture
from meit.models.encoder_choice import AUTO_ENCODER, adopt_encoder_artifact, contract_from_config
from meit.models.encoders import (
    ECGEncoder,
    EncoderContract,
    build_encoder,
    load_encoder_checkpoint,
    read_encoder_metadata,
)
from meit.models.fusion import KVSlotFusion, find_attention_modules, splice_prefix
from meit.models.loading import apply_lora, is_peft, load_llm, load_tokenizer, source_folder
from meit.models.model_artifact import load_model, save_model
from meit.models.projectors import build_projector, encoder_pools
from meit.models.stages import parameter_parts, set_stage

#: the token the tiny tokenizers reserve for ECG positions
_ECG_TOKEN = "<ecg>"

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


def _placeholder_id(tokenizer) -> int:
    """A token id to put at ECG positions (never searched for: positions come from ``ecg_mask``)."""
    vocab = tokenizer.get_vocab()
    if _ECG_TOKEN in vocab:
        return int(vocab[_ECG_TOKEN])
    for candidate in (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None and candidate != tokenizer.pad_token_id:
            return int(candidate)
    return int(tokenizer.pad_token_id or 0)


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
        self._expects_bos: bool | None = None  # read from the tokenizer on first use
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
        return self.llm.get_base_model() if is_peft(self.llm) else self.llm

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
    def build(cls, cfg: ModelConfig, *, data_fs: int, data_seconds: float,
              train_reports: Iterable[str] | Callable[[], Iterable[str]] | None = None) -> MeitModel:
        """Build encoder, projector, backbone (+ LoRA / quantisation) and install the fusion.

        An encdec ``model.llm`` (``meit.config.ENCDEC_LLMS``) builds the non-LLM baseline instead
        (:class:`meit.models.encdec.EncDecModel`, same interface), whose vocabulary comes from
        ``train_reports`` (the training split's reports, or a function returning them).
        """
        if cfg.is_encdec:
            if train_reports is None:
                raise ConfigError(f"model.llm={cfg.llm} builds its vocabulary from the training reports: "
                                  "pass train_reports")
            return EncDecModel.build(cfg, data_fs=data_fs, data_seconds=data_seconds,  # type: ignore[return-value]
                                     train_reports=train_reports)
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
            cfg = adopt_encoder_artifact(cfg, artifact)
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
        hf = llm.get_base_model() if is_peft(llm) else llm
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
        return self.encoder(ecg.to(device=param.device, dtype=param.dtype),
                            pooled=encoder_pools(self.num_ecg_tokens, self.cfg.projector))

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
            # the slot opens the prompt: first, or right after BOS when the tokenizer starts every text with one
            if self._expects_bos is None:
                self._expects_bos = expects_bos(self.tokenizer)
            expected = first + int(self._expects_bos)
            leading = input_ids.gather(1, first[:, None])[:, 0]
            if bool((expected != slot).any()) or (self._expects_bos and bool(
                    (leading != self.tokenizer.bos_token_id).any())):
                where = "the second, right after the tokenizer's BOS" if self._expects_bos else "the first"
                raise DataError(
                    f"kv fusion: the ECG slot must be {where} non-padding position of each row (expected at "
                    f"{expected.tolist()}, slots at {slot.tolist()}, first tokens {leading.tolist()})"
                )

    @staticmethod
    def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
        """Positions counted over attended tokens (left or right padding alike; pads get 0)."""
        pos = attention_mask.long().cumsum(-1) - 1
        return pos.masked_fill(attention_mask == 0, 0)

    def _llm_inputs(self, ecg, input_ids, attention_mask, ecg_mask, *, generating: bool,
                    feats: torch.Tensor | None = None, cached: bool = True) -> dict[str, Any]:
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
            # generating with a KV cache, the slot is read once (prefill) and then lives in the cache;
            # without one, every step recomputes the whole sequence and must see the slot again
            self._kv.set(tokens, ecg_mask, prefill_only=generating and cached, grows=generating and not cached)
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
            cached = kwargs.get("use_cache", gen_cfg.use_cache is not False) is not False
            inputs = self._llm_inputs(ecg, input_ids, attention_mask, ecg_mask, generating=True, cached=cached)
            out = self.llm.generate(**inputs, **kwargs)
        finally:
            if self._kv is not None:
                self._kv.clear()
            self.train(was_training)
        sequences = out.sequences if hasattr(out, "sequences") else out
        return sequences[:, input_ids.shape[1]:]

    # ------------------------------------------------------------------------------------------
    # training helpers

    def trainable_parameter_groups(
        self, stage: Literal["encoder", "align", "finetune"], train_encoder: bool = True,
        train_finding_head: bool | None = None,
    ) -> dict[str, list[nn.Parameter]]:
        """Set ``requires_grad`` for a training stage; the trainable parameters by part (``meit.models.stages``)."""
        return set_stage(self, stage, train_encoder, train_finding_head)

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
        return {k: sum(p.numel() for p in v) for k, v in parameter_parts(self).items()}

    # ------------------------------------------------------------------------------------------
    # artifact (meit.models.model_artifact)

    def save_pretrained(
        self, directory: str | Path, merge_lora: bool = False, *, state_dict: dict[str, torch.Tensor] | None = None
    ) -> Path:
        """Write one self-describing folder (safetensors only); ``merge_lora`` folds LoRA into the base weights;
        ``state_dict`` replaces the live tensors (a sharded trainer gathers them first). See ``docs/models.md``."""
        return save_model(self, directory, merge_lora, state_dict=state_dict)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device | None = None, **overrides: Any
    ) -> MeitModel:
        """Reload an artifact from its folder alone; ``overrides`` replace load-time ModelConfig fields
        (``quantization``, ``dtype``, ``gradient_checkpointing``, ``trust_remote_code``, ``max_length``).
        An encdec artifact (``architecture: encdec`` in ``meit_model.json``) reloads as an ``EncDecModel``."""
        if artifact_architecture(directory) == ENCDEC_ARCHITECTURE:
            return EncDecModel.from_pretrained(directory, device=device, **overrides)  # type: ignore[return-value]
        return load_model(cls, directory, device=device, **overrides)
