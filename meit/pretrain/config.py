"""Pretraining recipes (``meit pretrain``): ECG encoder + text encoder, contrastive (+ masked reconstruction).

Same YAML + ``section.key=value`` overrides and the same did-you-mean errors as training recipes
(:func:`meit.config.load_recipe` with ``schema=PretrainRecipe``); ``data`` is the training recipe's section.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from meit.config import DataConfig, LoopConfig, SignalInputConfig, _Section, check_bandpass
from meit.data.contract import PROCESSING_FIELDS, EncoderContract, checked_contract
from meit.data.stored_rate import data_rate


class EcgSideConfig(SignalInputConfig):
    """The ECG encoder being pretrained; its contract defaults to the data's rate and length."""

    encoder: str = "resnet1d-18"
    fs: int | None = Field(None, gt=0, description="input rate the encoder expects; default data.fs")
    seconds: float | None = Field(None, gt=0, description="input length in seconds; default data.seconds")
    checkpoint: str | None = Field(None, description="start from an encoder artifact (meit-encoder folder)")

    @field_validator("bandpass")
    @classmethod
    def _check_bandpass(cls, value: tuple[float | None, float | None] | None) -> tuple | None:
        return check_bandpass(value)

    def contract(self, data: DataConfig) -> EncoderContract:
        """The encoder contract this section declares (rate and length default to the data's)."""
        if self.fs and self.seconds:
            fs, seconds = self.fs, self.seconds
        else:
            data_fs, data_seconds = data_rate(data)
            fs, seconds = self.fs or data_fs, self.seconds or data_seconds
        return checked_contract({"leads": 12, "fs": fs, "seconds": seconds,
                                 **{key: getattr(self, key) for key in PROCESSING_FIELDS}}, "ecg.")


class TextSideConfig(_Section):
    """The report encoder: ``minilm`` is the packaged all-MiniLM-L6-v2; else a local folder or a hub id."""

    model: str = "minilm"
    max_length: int = Field(128, ge=8)
    pooling: Literal["mean", "cls"] = "mean"
    freeze_layers: int = Field(0, ge=-1, description="freeze embeddings + the first N layers; -1 freezes all")
    dropout: float | None = Field(None, ge=0, lt=1, description="override the text model's dropout")
    trust_remote_code: bool = False


class ObjectiveConfig(_Section):
    """Symmetric InfoNCE (MERL/CLIP-style) plus an optional masked-signal reconstruction term."""

    embed_dim: int = Field(256, ge=8)
    temperature: float = Field(0.07, gt=0, lt=1, description="initial softmax temperature")
    learn_temperature: bool = True
    gather: bool = Field(True, description="use every process's batch as negatives (one big batch)")
    same_report_positive: bool = Field(
        True, description="pairs whose reports are identical count as positives, not negatives"
    )
    mask_ratio: float = Field(0.0, ge=0, lt=1, description="fraction of the signal masked (0 = no masking)")
    mask_span_seconds: float = Field(0.2, gt=0)
    reconstruction_weight: float = Field(0.0, ge=0, description="weight of the masked-signal MSE (0 = off)")

    @model_validator(mode="after")
    def _check_reconstruction(self) -> ObjectiveConfig:
        if self.reconstruction_weight > 0 and self.mask_ratio == 0:
            raise ValueError("objective.reconstruction_weight > 0 needs objective.mask_ratio > 0 (e.g. 0.3)")
        return self


class PretrainTrainConfig(LoopConfig):
    """The loop's keys with pretraining defaults, plus the text encoder's own learning rate."""

    epochs: float = Field(10.0, gt=0)
    batch_size: int = Field(64, ge=2, description="per process; InfoNCE needs at least 2")
    lr: float = Field(1e-3, gt=0, description="ECG encoder, heads and temperature")
    lr_text: float = Field(2e-5, gt=0, description="text encoder (pretrained: keep it small)")
    weight_decay: float = Field(1e-4, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant"] = "cosine"
    eval_every: int | None = Field(None, ge=1, description="validation loss and recall every N steps")


class PretrainEvalConfig(_Section):
    """The self-evaluation written to ``OUTPUT_DIR/metrics.json`` after training."""

    split: str = "validation"
    max_samples: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10])
    prompts: str | None = Field(None, description="YAML of zero-shot prompt sets; default: the packaged set")
    min_positives: int = Field(5, ge=1, description="findings with fewer positives (or negatives) are not scored")

    @field_validator("ks")
    @classmethod
    def _positive_ks(cls, value: list[int]) -> list[int]:
        if not value or any(k < 1 for k in value):
            raise ValueError(f"eval.ks must be positive integers, got {value}")
        return sorted(set(value))


class PretrainRecipe(_Section):
    """A contrastive pretraining run; its final folder is an encoder artifact ``meit train`` accepts."""

    output_dir: str = "runs/pretrain"
    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    ecg: EcgSideConfig = Field(default_factory=EcgSideConfig)
    text: TextSideConfig = Field(default_factory=TextSideConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    train: PretrainTrainConfig = Field(default_factory=PretrainTrainConfig)
    eval: PretrainEvalConfig = Field(default_factory=PretrainEvalConfig)
