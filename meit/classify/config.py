"""Classification recipes (``meit classify train``): an ECG encoder (signal or image) and a multi-label head.

Same YAML + ``section.key=value`` overrides and did-you-mean errors as every meit recipe
(:func:`meit.config.load_recipe` with ``schema=ClassifyRecipe``). The ``ecg`` section is pretraining's (encoder,
rate, length, filters and the image side of the contract: ``ecg.image_mode=paper-3x4``,
``ecg.image_denoise=grid+flatten``, ``ecg.image_augment``…), so an encoder artifact moves between the three jobs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from meit.config import DataConfig, LoopConfig, _Section
from meit.pretrain.config import EcgSideConfig

#: where a record's labels come from: PTB-XL's five diagnostic superclasses (``scp_codes``), the findings its
#: SCP codes imply, or the findings the extractor reads in its report (any dataset, MIMIC-IV-ECG included)
LabelSource = Literal["superclass", "scp-findings", "report-findings"]


class ClassifyDataConfig(DataConfig):
    """The target dataset, and where its labels come from."""

    labels: LabelSource = "superclass"
    test_split: str = "test"
    min_positives: int = Field(5, ge=1, description=(
        "finding label sets keep the findings with at least this many positive training records"))


class StageOneConfig(_Section):
    """Wang et al.'s first stage: train on another dataset (e.g. rendered `meit synth` records), then fine-tune on
    ``data.path``. The encoder carries over; the head too when both stages have the same labels."""

    path: str | None = Field(None, description="prepared dataset of the first stage; null: one stage only")
    max_steps: int = Field(200, ge=1)
    lr: float | None = Field(None, gt=0, description="default: train.lr")
    labels: LabelSource | None = Field(None, description="default: data.labels")


class ClassifyTrainConfig(LoopConfig):
    """The loop's keys with classification defaults."""

    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant"] = "cosine"
    head_dropout: float = Field(0.1, ge=0, lt=1)
    trackers: list[str] = Field(default_factory=list)


class ClassifyEvalConfig(_Section):
    """Scoring after training (and by ``meit classify eval``): per-class AUROC with bootstrap intervals."""

    batch_size: int = Field(64, ge=1)
    max_samples: int | None = Field(None, ge=1)
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples of the test records (0: no intervals)")
    confidence: float = Field(0.95, gt=0, lt=1)
    degrade: dict[str, float] = Field(default_factory=dict, description=(
        "also score test pages made to look scanned with these augmentation strengths (paper images only), "
        "e.g. {rotation: 0.5, blur: 0.5, shadow: 0.5}"))

    @field_validator("degrade")
    @classmethod
    def _strengths(cls, value: dict[str, float]) -> dict[str, float]:
        from meit.data.image_spec import AUGMENTATIONS

        for name, strength in value.items():
            if name not in AUGMENTATIONS:
                raise ValueError(f"eval.degrade.{name} is not an augmentation (known: {', '.join(AUGMENTATIONS)})")
            if not 0 <= strength <= 1:
                raise ValueError(f"eval.degrade.{name} must be a strength from 0 to 1, got {strength}")
        return value


class ClassifyRecipe(_Section):
    """A classification run: optional first stage, training on ``data.path``, scoring on ``data.test_split``."""

    output_dir: str = "runs/classify"
    seed: int = 42
    data: ClassifyDataConfig = Field(default_factory=ClassifyDataConfig)
    ecg: EcgSideConfig = Field(default_factory=EcgSideConfig)
    stage1: StageOneConfig = Field(default_factory=StageOneConfig)
    train: ClassifyTrainConfig = Field(default_factory=ClassifyTrainConfig)
    eval: ClassifyEvalConfig = Field(default_factory=ClassifyEvalConfig)

    @model_validator(mode="after")
    def _degrade_needs_paper(self) -> ClassifyRecipe:
        if self.eval.degrade and not self.ecg.image_mode.startswith("paper-"):
            raise ValueError(f"eval.degrade makes paper pages look scanned; ecg.image_mode is {self.ecg.image_mode}")
        return self
