"""EncDecModel: the non-LLM baseline — a 1D ResNet encoder and a word-level decoder, trained from scratch.

It follows Bleich et al. (ResNet-34-1D + Transformer or LSTM decoder, a vocabulary of the training
reports) and presents the interface of :class:`meit.models.MeitModel` (``tokenizer``, ``encoder.contract``,
``num_ecg_tokens``/``ecg_placement``/``ecg_placeholder_id`` for the prompt, ``forward`` with the batch
the collator makes, ``generate`` returning new tokens, ``trainable_parameter_groups``, ``save_pretrained``
/ ``from_pretrained``), so ``meit train``, ``meit eval``, the controls, ``meit generate`` and the bench
suites run it unchanged.

The prompt is ``<ecg> <bos>`` whatever the instruction (its tokenizer's chat template renders only
``<bos>``); the decoder reads ``<bos> report <eos>`` and attends to the encoder's time steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from meit.config import ENCDEC_LLMS, ModelConfig
from meit.data.prompts import IGNORE_INDEX
from meit.errors import ConfigError, DataError, ModelError
from meit.findings import FINDINGS
from meit.models.backbones import BackboneSpec
from meit.models.encdec.decoders import build_decoder
from meit.models.encdec.search import decode
from meit.models.encdec.vocab import ECG, build_word_tokenizer
from meit.models.encoder_choice import AUTO_ENCODER, adopt_encoder_artifact, contract_from_config
from meit.models.encoders import (
    ECGEncoder,
    EncoderContract,
    build_encoder,
    load_encoder_checkpoint,
    read_encoder_metadata,
)

#: decoding options ``generate`` accepts (what ``meit.inference.DecodingSettings`` passes, plus the ids)
_GENERATE_KEYS = frozenset({"max_new_tokens", "num_beams", "do_sample", "temperature", "top_p", "pad_token_id",
                            "eos_token_id", "use_cache"})


def encdec_backbone(cfg: ModelConfig) -> BackboneSpec:
    """The backbone entry of an encdec model: no pretrained weights, the tokenizer's ``<bos>``-only template."""
    return BackboneSpec(
        name=cfg.llm, family="encdec", model_type=cfg.llm, source="scratch", template="chat", lora_targets=(),
        attention_pattern="", hidden_states_arg="kwarg", attn_implementation=None,
        position_encoding="sinusoidal" if cfg.llm == "encdec-transformer" else "recurrent", sliding_window=False,
        notes="non-LLM baseline (Bleich et al.): word-level decoder trained from scratch",
    )


@dataclass
class EncDecOutput:
    """``loss`` (LM loss, plus the weighted findings loss when targets were given) and the logits of the
    decoder sequence (``[B, L, V]`` over ``<bos> report``, the prompt and padding removed)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    findings_loss: torch.Tensor | None = None
    finding_logits: torch.Tensor | None = None


def _encoder_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    return {} if cfg.encdec.encoder_width is None else {"base_width": cfg.encdec.encoder_width}


class EncDecModel(nn.Module):
    """Encoder → decoder. Build with :meth:`build` (or ``MeitModel.build`` with an encdec ``model.llm``)."""

    def __init__(self, cfg: ModelConfig, encoder: ECGEncoder, decoder: nn.Module, tokenizer: Any, *,
                 finding_head: nn.Module | None = None, finding_labels: list[str] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = encdec_backbone(cfg)
        self.encoder = encoder
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.finding_head = finding_head
        self.finding_labels = list(finding_labels or [])
        self.lora_state: Literal["none"] = "none"
        self.fusion = "none"
        self.num_ecg_tokens = 1
        self.ecg_placement: Literal["start", "inline"] = "start"
        self.ecg_placeholder_id = int(tokenizer.convert_tokens_to_ids(ECG))

    @property
    def contract(self) -> EncoderContract:
        return self.encoder.contract

    # ------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def build(cls, cfg: ModelConfig, *, data_fs: int, data_seconds: float,
              train_reports: Iterable[str] | Callable[[], Iterable[str]]) -> EncDecModel:
        """A fresh model; its vocabulary comes from ``train_reports`` (the training split's reports only)."""
        if not cfg.is_encdec:
            raise ConfigError(f"EncDecModel needs model.llm in {list(ENCDEC_LLMS)}, got {cfg.llm!r}")
        artifact = read_encoder_metadata(cfg.encoder_checkpoint) if cfg.encoder_checkpoint else None
        encoder_kwargs = _encoder_kwargs(cfg)
        if artifact is not None:
            cfg = adopt_encoder_artifact(cfg, artifact)
            encoder_kwargs = dict(artifact.kwargs)
        elif cfg.encoder == AUTO_ENCODER:
            raise ConfigError(f"model.encoder={AUTO_ENCODER} takes the encoder from model.encoder_checkpoint, which "
                              f"must then be an encoder artifact folder; got {cfg.encoder_checkpoint!r}")
        contract = contract_from_config(cfg, data_fs=data_fs, data_seconds=data_seconds)
        reports = train_reports() if callable(train_reports) else train_reports
        enc = cfg.encdec
        tokenizer = build_word_tokenizer(reports, min_count=enc.vocab_min_count, max_size=enc.vocab_max_size,
                                         lowercase=enc.lowercase)
        encoder = _build_encoder(cfg, contract, encoder_kwargs)
        if cfg.encoder_checkpoint:
            load_encoder_checkpoint(encoder, cfg.encoder_checkpoint)
        decoder = build_decoder(cfg.llm, len(tokenizer), encoder.out_dim, enc, tokenizer.pad_token_id)
        labels = list(FINDINGS) if cfg.finding_head else []
        head = nn.Linear(encoder.out_dim, len(labels)) if labels else None
        if cfg.gradient_checkpointing:
            raise ConfigError(f"model.gradient_checkpointing is for LLM backbones; model.llm={cfg.llm} is small "
                              "enough without it: set model.gradient_checkpointing=false")
        model = cls(cfg, encoder, decoder, tokenizer, finding_head=head, finding_labels=labels)
        model.trainable_parameter_groups("finetune", train_encoder=True)
        return model

    # ------------------------------------------------------------------------------------------
    # forward

    def _features(self, ecg: torch.Tensor) -> torch.Tensor:
        self.encoder.check_input(ecg)
        param = next(self.encoder.parameters())
        return self.encoder(ecg.to(device=param.device, dtype=param.dtype), pooled=False)

    def decoder_sequence(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, ecg_mask: torch.Tensor,
                         labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The decoder's view of a collated batch: each row's attended non-ECG tokens moved to the front
        (``<bos> report <eos>``, then padding), their labels (-100 at padding and the prompt) and a keep mask.

        Left or right padding give the same sequences; each row must mark exactly one ECG position.
        """
        ecg_mask = ecg_mask.to(device=input_ids.device, dtype=torch.bool)
        if input_ids.shape != attention_mask.shape or input_ids.shape != ecg_mask.shape:
            raise DataError(f"input_ids {list(input_ids.shape)}, attention_mask {list(attention_mask.shape)} and "
                            f"ecg_mask {list(ecg_mask.shape)} must have the same shape [batch, length]")
        counts = ecg_mask.sum(dim=1)
        if bool((counts != 1).any()):
            raise DataError(f"ecg_mask must mark exactly 1 position per row (encdec); got {counts.tolist()}")
        keep = attention_mask.to(input_ids.device).bool() & ~ecg_mask
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept tokens first, in order
        tokens = input_ids.gather(1, order)
        keep = keep.gather(1, order)
        tokens = tokens.masked_fill(~keep, self.tokenizer.pad_token_id)
        if labels is None:
            targets = torch.full_like(tokens, IGNORE_INDEX)
        else:
            targets = labels.to(input_ids.device).gather(1, order).masked_fill(~keep, IGNORE_INDEX)
        return tokens, targets, keep

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
    ) -> EncDecOutput:
        """Teacher-forced logits and the mean next-token cross-entropy over the labelled report tokens.

        Without ``input_ids`` only the encoder and its findings head run (``train.stage=encoder``).
        ``labelled_logits_only`` is accepted for the LLM interface; the vocabulary is small, so every position's
        logits are computed.
        """
        feats = self._features(ecg)
        head_logits = aux = None
        if finding_targets is not None or (input_ids is None and self.finding_head is not None):
            if self.finding_head is None:
                raise ModelError("this model has no findings head: build it with model.finding_head=true")
            head_logits = self.finding_head(feats.mean(dim=1))
        if finding_targets is not None:
            assert head_logits is not None
            aux = F.binary_cross_entropy_with_logits(head_logits.float(),
                                                     finding_targets.to(head_logits.device, torch.float32))
        if input_ids is None:
            if head_logits is None:
                raise DataError("forward without input_ids runs the findings head (encoder stage): the model has "
                                "none (model.finding_head=false)")
            return EncDecOutput(loss=aux, findings_loss=aux, finding_logits=head_logits)
        if attention_mask is None or ecg_mask is None:
            raise DataError("forward with input_ids needs attention_mask and ecg_mask")
        tokens, targets, _ = self.decoder_sequence(input_ids, attention_mask, ecg_mask, labels)
        logits = self.decoder(tokens, self.decoder.memory(feats))
        lm_loss = loss = None
        if labels is not None:
            shifted = targets[:, 1:]
            if bool((shifted != IGNORE_INDEX).any()):
                lm_loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), shifted.reshape(-1),
                                          ignore_index=IGNORE_INDEX)
            else:
                lm_loss = logits.float().sum() * 0.0
            loss = lm_loss if aux is None else lm_loss + findings_weight * aux
        return EncDecOutput(loss=loss, logits=logits, lm_loss=lm_loss, findings_loss=aux, finding_logits=head_logits)

    # ------------------------------------------------------------------------------------------
    # generation

    @torch.no_grad()
    def generate(self, ecg: torch.Tensor, input_ids: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, ecg_mask: torch.Tensor | None = None,
                 **generation_kwargs: Any) -> torch.Tensor:
        """New tokens ``[B, ≤ max_new_tokens]`` for each ECG (the prompt is not read: it is always ``<ecg> <bos>``).

        Greedy by default; ``num_beams > 1`` beam search; ``do_sample`` with ``temperature`` / ``top_p``.
        """
        unknown = set(generation_kwargs) - _GENERATE_KEYS
        if unknown:
            raise ModelError(f"encdec generate does not support {sorted(unknown)} "
                             f"(supported: {sorted(_GENERATE_KEYS)})")
        tok = self.tokenizer
        was_training = self.training
        self.eval()
        try:
            memory = self.decoder.memory(self._features(ecg))
            return decode(
                self.decoder, memory, bos_id=tok.bos_token_id,
                eos_id=int(generation_kwargs.get("eos_token_id") or tok.eos_token_id),
                pad_id=int(generation_kwargs.get("pad_token_id") or tok.pad_token_id),
                max_new_tokens=int(generation_kwargs.get("max_new_tokens", 64)),
                num_beams=int(generation_kwargs.get("num_beams", 1)),
                do_sample=bool(generation_kwargs.get("do_sample", False)),
                temperature=float(generation_kwargs.get("temperature", 1.0)),
                top_p=float(generation_kwargs.get("top_p", 1.0)),
                banned=self._never_generated(),
            )
        finally:
            self.train(was_training)

    def _never_generated(self) -> tuple[int, ...]:
        """Padding, ``<bos>``, ``<ecg>`` and ``<unk>`` (which decodes to nothing): only words and EOS are written."""
        tok = self.tokenizer
        return tuple(sorted({tok.pad_token_id, tok.bos_token_id, tok.unk_token_id, self.ecg_placeholder_id}))

    # ------------------------------------------------------------------------------------------
    # training helpers

    def trainable_parameter_groups(self, stage: Literal["encoder", "align", "finetune"], train_encoder: bool = True,
                                   train_finding_head: bool | None = None) -> dict[str, list[nn.Parameter]]:
        """``finetune``: decoder + encoder (unless ``train_encoder`` is false); ``encoder``: encoder + findings head.
        Sets ``requires_grad`` and returns the trainable parameters by part (frozen parts → empty lists)."""
        if stage not in ("encoder", "finetune"):
            raise ConfigError(f"model.llm={self.cfg.llm} trains with train.stage=finetune or encoder, got {stage!r} "
                              "(there is no projector to align)")
        if stage == "encoder" and self.finding_head is None:
            raise ConfigError("train.stage=encoder trains the encoder through its findings head: "
                              "set model.finding_head=true")
        train = {
            "encoder": stage == "encoder" or train_encoder,
            "decoder": stage == "finetune",
            "finding_head": stage == "encoder" if train_finding_head is None else train_finding_head,
        }
        groups: dict[str, list[nn.Parameter]] = {}
        for key, params in self._parts().items():
            for p in params:
                p.requires_grad_(train[key])
            groups[key] = params if train[key] else []
        if self.training:
            self.train(True)
        return groups

    def _parts(self) -> dict[str, list[nn.Parameter]]:
        parts = {"encoder": list(self.encoder.parameters()), "decoder": list(self.decoder.parameters())}
        if self.finding_head is not None:
            parts["finding_head"] = list(self.finding_head.parameters())
        return parts

    def train(self, mode: bool = True) -> EncDecModel:
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.encoder.parameters()):
            self.encoder.eval()  # a frozen encoder keeps its BatchNorm statistics
        return self

    def enable_gradient_checkpointing(self) -> None:
        raise ConfigError(f"model.gradient_checkpointing is for LLM backbones, not model.llm={self.cfg.llm}")

    def num_parameters(self) -> dict[str, int]:
        return {k: sum(p.numel() for p in v) for k, v in self._parts().items()}

    # ------------------------------------------------------------------------------------------
    # artifact (meit.models.encdec.artifact)

    def save_pretrained(self, directory: str | Path, merge_lora: bool = False, *,
                        state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """One self-describing folder (safetensors + the vocabulary); ``merge_lora`` has nothing to merge."""
        from meit.models.encdec.artifact import save_encdec

        return save_encdec(self, directory, state_dict=state_dict)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device | None = None,
                        **overrides: Any) -> EncDecModel:
        from meit.models.encdec.artifact import load_encdec

        return load_encdec(cls, directory, device=device, **overrides)


def _build_encoder(cfg: ModelConfig, contract: EncoderContract, kwargs: dict[str, Any]) -> ECGEncoder:
    try:
        return build_encoder(cfg.encoder, contract, **kwargs)
    except TypeError as err:
        raise ConfigError(f"model.encdec.encoder_width sets the base width of a ResNet encoder; model.encoder="
                          f"{cfg.encoder} does not take it ({err}): set model.encdec.encoder_width=null") from err
