"""Recipes: YAML files validated by pydantic, with ``section.key=value`` overrides.

An unknown or mistyped key is an error naming the key and the closest valid one; a wrong value says
which key, what was given and what would be right.
"""

from __future__ import annotations

import difflib
import functools
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from meit.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def check_bandpass(value: tuple[float | None, float | None] | None) -> tuple[float | None, float | None] | None:
    """A recipe's ``[low, high]`` band-pass: edges > 0, low < high; ``[null, null]`` means none."""
    if value is None:
        return None
    low, high = value
    if low is None and high is None:
        return None
    for edge in (low, high):
        if edge is not None and not edge > 0:
            raise ValueError(f"band-pass edges must be > 0 Hz, got {list(value)}")
    if low is not None and high is not None and not low < high:
        raise ValueError(f"band-pass must be [low, high] with low < high, got {list(value)}")
    return value


class LoraConfig(_Section):
    """peft LoRA settings; MEIT's defaults (r=64, alpha=128, dropout 0.1)."""

    enabled: bool = True
    r: int = Field(64, ge=1)
    alpha: float = Field(128, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    targets: list[str] | Literal["auto"] = "auto"


class SignalInputConfig(_Section):
    """How an encoder wants its signal prepared at load time (part of its input contract)."""

    normalisation: Literal["zscore", "minmax", "zscore_record", "minmax_record", "none"] = Field(
        "zscore", description="zscore / minmax per lead; zscore_record / minmax_record over the whole record"
    )
    notch_hz: float | None = Field(None, gt=0, description="zero-phase notch (Q 30) at this frequency, e.g. 50")
    bandpass: tuple[float | None, float | None] | None = Field(
        None, description="[low, high] Hz zero-phase Butterworth band-pass (either edge may be null)"
    )
    bandpass_order: int = Field(2, ge=1, le=8, description="Butterworth order of the band-pass")
    baseline: Literal["none", "highpass", "median"] = Field(
        "none", description="baseline removal: 0.5 Hz high-pass or minus a 0.4 s running median"
    )
    # the image side (meit.data.image_spec validates these against each other when the contract is built)
    image_mode: Literal["none", "paper-3x4", "paper-6x2", "paper-12x1", "gaf", "rp", "mtf"] = Field(
        "none", description="none: the encoder reads the signal; else the image it reads, rendered from the "
                            "processed signal at load time (paper layout, or Gramian angular field / recurrence "
                            "plot / Markov transition field); image encoders (*-image) need one")
    image_size: int | tuple[int, int] | None = Field(
        None, description="image size in px, one side or [height, width]; default per mode (paper-3x4 224×352)")
    image_dpi: int | None = Field(None, description=(
        "resolution a paper image is drawn at (25 mm/s, 10 mm/mV) before resizing to image_size; default: the dpi "
        "that draws the page at about the image's height, so traces keep their contrast"))
    image_mean: list[float] | None = Field(None, description="per-channel mean; default ImageNet's for paper, 0 else")
    image_std: list[float] | None = Field(None, description="per-channel std; default ImageNet's for paper, 1 else")
    image_denoise: Literal["none", "grid", "flatten", "grid+flatten"] = Field(
        "none", description="paper images only: flatten the background (shadows, tints) and/or remove the grid "
                            "before the encoder reads the page, in training and at evaluation alike")
    image_augment: dict[str, float] = Field(
        default_factory=dict, description="training-only augmentation strengths in [0, 1] of paper images "
                                          "(rotation, perspective, blur, noise, jpeg, colour, contrast, shadow, "
                                          "crease, marks); never at evaluation")


#: ``model.llm`` names of the non-LLM baseline (``meit/models/encdec``): the ECG encoder with a word-level
#: Transformer or LSTM decoder trained from scratch (Bleich et al.); the LLM keys do not apply to it
ENCDEC_LLMS: tuple[str, ...] = ("encdec-transformer", "encdec-lstm")


class EncDecConfig(_Section):
    """The decoder and vocabulary of the non-LLM baseline (``model.llm=encdec-transformer|encdec-lstm``)."""

    d_model: int = Field(256, ge=8, description="width of the word embeddings and of the decoder")
    layers: int = Field(3, ge=1, description="Transformer decoder layers, or stacked LSTM layers")
    heads: int = Field(8, ge=1, description="attention heads (Transformer self/cross attention)")
    ff_dim: int = Field(1024, ge=8, description="feed-forward width of each Transformer decoder layer")
    dropout: float = Field(0.1, ge=0, lt=1)
    encoder_width: int | None = Field(
        None, ge=4, description="base width of the ResNet encoder (its stem channels); None: the registry default")
    vocab_min_count: int = Field(2, ge=1, description="a word enters the vocabulary after this many train-report uses")
    vocab_max_size: int = Field(5000, ge=8, description="most frequent words kept (special tokens not counted)")
    lowercase: bool = Field(False, description="lowercase reports before building the vocabulary and training")

    @model_validator(mode="after")
    def _heads_divide(self) -> EncDecConfig:
        if self.d_model % self.heads:
            raise ValueError(f"model.encdec.d_model ({self.d_model}) must be a multiple of model.encdec.heads "
                             f"({self.heads})")
        return self


class ModelConfig(SignalInputConfig):
    """What to build: encoder → projector → fusion → LLM (+ LoRA), or encoder → word-level decoder (encdec)."""

    llm: str = "smollm2-135m-instruct"
    encoder: str = "resnet1d-50"
    encoder_checkpoint: str | None = None
    encoder_fs: int | None = Field(None, gt=0, description="input rate the encoder expects; default data.fs")
    encoder_seconds: float | None = Field(None, gt=0, description="input length in seconds; default data.seconds")
    projector: Literal["linear", "mlp", "resampler"] = "mlp"
    fusion: Literal["prefix", "kv"] = "kv"
    num_ecg_tokens: int = Field(1, ge=1, description="ECG tokens for prefix fusion (resampler queries)")
    projector_norm: bool = Field(
        False, description="standardise encoder features across the batch and give the projector output the "
                           "LLM's hidden-state scale (LayerNorm); keeps ECGs distinguishable and the scale stable")
    finding_head: bool = Field(
        False, description="a multi-label findings head on the pooled encoder features (meit.findings labels), "
                           "trained by train.stage=encoder and train.aux_findings_weight; it never writes text")
    kv_layers: list[int] | Literal["all"] = "all"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    quantization: Literal["none", "4bit", "8bit"] = "none"
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    max_length: int = Field(128, ge=8)
    template: Literal["auto", "chat", "plain"] = Field(
        "auto", description="prompt template: the backbone's default, its chat template, or MEIT's plain one"
    )
    system_prompt: str | None = Field(
        None, description="system message of every prompt; None keeps the chat template's own default (SmolLM2 "
                          "adds a 16-token one to every example), '' an empty one; the plain template puts it "
                          "on the line before the instruction")
    encdec: EncDecConfig = Field(default_factory=EncDecConfig, description=(
        "decoder and vocabulary of the non-LLM baseline; read only when model.llm is one of ENCDEC_LLMS"))

    @property
    def is_encdec(self) -> bool:
        """Whether this config builds the non-LLM baseline (no projector, fusion, LoRA or prompt)."""
        return self.llm in ENCDEC_LLMS

    @field_validator("bandpass")
    @classmethod
    def _check_bandpass(cls, value: tuple[float | None, float | None] | None) -> tuple | None:
        return check_bandpass(value)

    @model_validator(mode="after")
    def _check_encdec(self) -> ModelConfig:
        if self.is_encdec and self.quantization != "none":
            raise ValueError(f"model.llm={self.llm} trains every weight from scratch: model.quantization must be "
                             f"none, got {self.quantization}")
        return self

    @model_validator(mode="after")
    def _check_fusion(self) -> ModelConfig:
        if self.fusion == "kv" and self.num_ecg_tokens != 1:
            raise ValueError("model.num_ecg_tokens must be 1 with model.fusion=kv (one extra key/value slot)")
        return self


class DataConfig(_Section):
    path: str | None = None
    fs: int | None = Field(None, gt=0, description=(
        "rate (Hz) signals are read at when model.encoder_fs is unset; default: the prepared dataset's stored rate"))
    seconds: float | None = Field(None, gt=0, description=(
        "length (s) signals are read at when model.encoder_seconds is unset; default: as stored"))
    train_split: str = "train"
    eval_split: str = "validation"
    num_workers: int = Field(0, ge=0)
    group_by_length: bool = False
    balance_findings: float = Field(0.0, ge=0.0, le=1.0, description=(
        "draw training records with probability (1 / share of their rarest stated finding) ** this: "
        "0 uniform shuffling, 0.5 square-root inverse frequency, 1 inverse frequency"))
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    instruction_seed: int = 0
    image_cache: str | None = Field(None, description=(
        "a `meit render` folder of this dataset's records: image encoders read their clean paper images from it "
        "instead of drawing them (its settings must match the encoder's image contract)"))

    def require_path(self, override: str | None = None) -> str:
        """``override`` or ``data.path``; a clear error when neither is set."""
        path = override or self.path
        if not path:
            raise ConfigError("data.path is not set: point it at a prepared dataset (`meit prep …` output)")
        return path

    @model_validator(mode="after")
    def _one_sampler(self) -> DataConfig:
        if self.group_by_length and self.balance_findings > 0:
            raise ValueError("data.group_by_length and data.balance_findings each choose the training order: "
                             "set one of them (data.balance_findings=0 or data.group_by_length=false)")
        return self


class LoopConfig(_Section):
    """What the shared optimisation loop reads (``meit.training.loop``): length, batch, schedule, checkpoints, logs.

    ``train`` sections of every job (instruction tuning, pretraining) extend it with their own keys.
    """

    max_steps: int | None = Field(None, ge=0)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float | None = Field(1.0, gt=0)
    save_every: int | None = Field(None, ge=1)
    keep_last: int = Field(2, ge=1)
    resume: str | None = None
    log_every: int = Field(10, ge=1)
    eval_every: int | None = Field(None, ge=1)
    mixed_precision: Literal["no", "bf16", "fp16", "auto", "bf16-native"] = Field("auto", description=(
        "auto: bf16 on a GPU that has it, fp32 on CPU; bf16-native: bf16 wherever the hardware computes it natively "
        "(such GPUs, CPUs with AVX512-BF16 or AMX: 1.4x faster SmolLM2 steps measured), fp32 elsewhere"))
    trackers: list[str] = Field(default_factory=lambda: ["tensorboard"])

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: object) -> object:
        # YAML reads a bare `no` as False; `train.mixed_precision=no` means the string
        return "no" if value is False else value

    @field_validator("resume")
    @classmethod
    def _resume(cls, value: str | None) -> str | None:
        if value in (None, "", "none", "null"):
            return None
        return value


class EncoderStageConfig(_Section):
    """A first stage run by ``meit train`` itself: the encoder and its findings head learn the findings that
    the reference reports state (``train.stage=encoder``), before the LLM stage starts from that artifact.

    The LLM never runs in it, so a step costs what the encoder costs: many large batches fit in the time of
    a few LLM steps. Written to ``OUTPUT_DIR/encoder_stage/`` and skipped when its ``final/`` exists.
    """

    max_steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=2, description="at least 2: BatchNorm needs batch statistics")
    lr: float = Field(1e-3, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    eval_every: int | None = Field(None, ge=1, description="validation findings F1 of the head every N steps")


class TrainConfig(LoopConfig):
    """Instruction tuning: the loop's keys plus stages and per-part learning rates."""

    stage: Literal["encoder", "align", "finetune"] = Field(
        "finetune", description="encoder: encoder + findings head on report-derived labels, no LLM; "
                                "align: projector only; finetune: LoRA + projector (+ encoder)")
    init_from: str | None = None
    encoder_stage: EncoderStageConfig | None = Field(
        None, description="run an encoder stage first (needs model.finding_head=true; not with init_from)")
    aux_findings_weight: float = Field(
        0.0, ge=0, description="weight of the findings-head loss added to the LM loss in align/finetune "
                               "(needs model.finding_head=true)")
    lr_encoder: float | None = Field(None, gt=0)
    lr_projector: float | None = Field(None, gt=0)
    train_encoder: bool = True
    sample_reports: int = Field(2, ge=0, description="validation reports generated and logged every eval_every steps")


    @model_validator(mode="after")
    def _stages_agree(self) -> TrainConfig:
        if self.encoder_stage is not None and self.init_from:
            raise ValueError("train.encoder_stage and train.init_from both say where the model starts: set one")
        if self.encoder_stage is not None and self.stage == "encoder":
            raise ValueError("train.encoder_stage runs before an align/finetune stage; with train.stage=encoder "
                             "set train.encoder_stage=null and use train.max_steps")
        return self


class EvalConfig(_Section):
    """Decoding, scoring and controls of ``meit eval`` (and of the evaluations bench and quickstart run)."""

    split: str = "test"
    max_new_tokens: int = Field(96, ge=1)
    batch_size: int = Field(16, ge=1)
    num_beams: int = Field(1, ge=1)
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    meteor: bool = True
    bertscore: bool = False
    max_samples: int | None = Field(None, ge=1)
    max_samples_untrained: int | None = Field(
        None, ge=1, description="rows of the quickstart's untrained (0-step) baseline; default max_samples"
    )
    controls: list[Literal["shuffled", "zeros"]] = Field(
        default_factory=list,
        description="also evaluate with another record's ECG (a derangement seeded by the recipe seed) "
        "and/or a flat zero ECG, to measure how much the reports depend on the signal",
    )
    verify: bool = Field(
        False, description="check each generated report's statements against its record's stored signal "
        "(verdicts.jsonl, and the contradicted share in metrics.json; docs/evaluation.md)",
    )

    @field_validator("controls", mode="before")
    @classmethod
    def _one_control_or_many(cls, value: object) -> object:
        # `eval.controls=shuffled` on the command line means the list [shuffled]
        return [value] if isinstance(value, str) else value

    @field_validator("controls")
    @classmethod
    def _unique_controls(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))  # a repeated control would only be evaluated twice


class Recipe(_Section):
    """An instruction-tuning run (``meit train`` / ``meit eval``)."""

    output_dir: str = "runs/meit"
    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _head_and_batch(self) -> Recipe:
        train = self.train
        uses_head = train.stage == "encoder" or train.encoder_stage is not None or train.aux_findings_weight > 0
        if uses_head and not self.model.finding_head and not train.init_from:
            raise ValueError("train.stage=encoder, train.encoder_stage and train.aux_findings_weight train the "
                             "encoder through its findings head: set model.finding_head=true")
        if self.model.is_encdec and train.stage == "align":
            raise ValueError(f"model.llm={self.model.llm} has no projector to align: train.stage must be finetune "
                             "(everything trains) or encoder (encoder + findings head)")
        if self.model.projector_norm and train.stage != "encoder" and train.batch_size < 2:
            raise ValueError("model.projector_norm standardises encoder features across the batch: "
                             "train.batch_size must be at least 2 per process (raise it and lower train.grad_accum)")
        return self


# ---------------------------------------------------------------------------------------------
# loading, overrides, errors

SchemaT = TypeVar("SchemaT", bound=BaseModel)


@functools.cache
def _valid_keys(model_cls: type[BaseModel], prefix: str = "") -> tuple[str, ...]:
    keys: list[str] = []
    for name, field in model_cls.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        for section in _sections_of(field.annotation):
            keys.extend(_valid_keys(section, dotted + "."))
    return tuple(keys)


def _sections_of(annotation: Any) -> list[type[BaseModel]]:
    """The recipe sections a field holds: ``Section`` itself, or inside ``Section | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]


VALID_KEYS: tuple[str, ...] = tuple(_valid_keys(Recipe))


#: keys that once validated but were never read; naming them is an error that says what to use instead
RETIRED_KEYS: dict[str, str] = {
    "data.test_split": "it was never read: the split `meit eval` and the quickstart score is eval.split",
}


def _unknown_key_hint(key: str, schema: type[BaseModel]) -> str:
    if key in RETIRED_KEYS:
        return f" (removed: {RETIRED_KEYS[key]})"
    hint = closest_key(key, schema)
    return f"; did you mean '{hint}'?" if hint else ""


def closest_key(key: str, schema: type[BaseModel] = Recipe) -> str | None:
    """The valid key of ``schema`` that most resembles ``key`` (for 'did you mean')."""
    matches = difflib.get_close_matches(key, _valid_keys(schema), n=1, cutoff=0.5)
    return matches[0] if matches else None


def _format_validation_error(err: ValidationError, source: str, schema: type[BaseModel]) -> str:
    lines = [f"invalid recipe ({source}):"]
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"  unknown key '{key}'{_unknown_key_hint(key, schema)}")
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.lr=1e-4'`` → (['train', 'lr'], 1e-4); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip().lstrip("-")
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': value is not valid YAML ({err})") from err
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str], schema: type[BaseModel] = Recipe) -> dict[str, Any]:
    valid = _valid_keys(schema)
    for text in overrides:
        path, value = parse_override(text)
        dotted = ".".join(path)
        if dotted not in valid:
            raise ConfigError(f"unknown key '{dotted}' in override '{text}'{_unknown_key_hint(dotted, schema)}")
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return data


def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None,
                schema: type[SchemaT] = Recipe) -> SchemaT:  # type: ignore[assignment]
    """Read a YAML recipe (or the defaults when ``path`` is None), apply overrides, validate against ``schema``."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"recipe file not found: {file}")
        try:
            loaded = yaml.safe_load(file.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"recipe {file} is not valid YAML: {err}") from err
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"recipe {file} must be a mapping of sections, got {type(loaded).__name__}")
        data = loaded
    data = apply_overrides(data, list(overrides or []), schema)
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source, schema)) from None


def dump_recipe(recipe: BaseModel) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
