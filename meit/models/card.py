"""The model card: ``model_card.json`` (versioned schema) and ``MODEL_CARD.md`` rendered from it, in every artifact.

Training, pretraining and export write a card into their ``final/`` folder; every ``meit eval`` of that
folder adds (or replaces) its own entry under ``evaluations``, keyed by dataset and split, so evaluations of
different splits or datasets sit side by side. The JSON is the record; the markdown is always
:func:`meit.models.card_render.render_card` of it, so the two cannot disagree.

Writing a card must never fail a training or evaluation run that was otherwise good: callers go through
:func:`guarded`, which logs a failure as a warning and counts it (:func:`card_failures`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meit.errors import ModelError
from meit.publish import atomic_write_text

log = logging.getLogger(__name__)

CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
CARD_SCHEMA = 1
LOCK_FILE = ".model_card.lock"
RESEARCH_ONLY = "Research only; not a medical device."

#: card-writing failures of this process, by where they happened ("train", "pretrain", "eval", "export")
_FAILURES: Counter[str] = Counter()


class ModelCardError(ModelError):
    """A model card is missing, unreadable or does not follow its schema (names the file and field)."""


# --------------------------------------------------------------------------------------------- schema


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackboneFacts(_Part):
    name: str
    source: str
    family: str
    licence: str


class TextEncoderFacts(_Part):
    name: str
    licence: str
    parameters: int


class EncoderFacts(_Part):
    name: str
    checkpoint: str | None = None
    checkpoint_source: dict[str, Any] = Field(default_factory=dict)
    contract: dict[str, Any]
    lead_names: list[str]
    description: str


class AdaptationFacts(_Part):
    method: Literal["lora", "merged-lora", "full", "none"]
    r: int | None = None
    alpha: float | None = None
    dropout: float | None = None
    targets: list[str] | None = None


class ParameterFacts(_Part):
    total: int = Field(ge=0)
    trainable: int | None = Field(None, ge=0)
    by_part: dict[str, int] = Field(default_factory=dict)


class ModelFacts(_Part):
    kind: Literal["meit-model", "meit-ecg-text"]
    backbone: BackboneFacts | None = None
    text_encoder: TextEncoderFacts | None = None
    encoder: EncoderFacts
    fusion: dict[str, Any] | None = None
    projector: dict[str, Any] | None = None
    decoder: dict[str, Any] | None = None  # the non-LLM baseline's word-level decoder (no fusion, projector, LoRA)
    adaptation: AdaptationFacts | None = None
    quantisation: str = "none"
    dtype: str | None = None
    parameters: ParameterFacts


class DataFacts(_Part):
    path: str | None
    name: str
    source: str | None = None
    synthetic: bool | None = None
    synthetic_evidence: str = ""
    manifest_sha256: str | None = None
    content_hash: str | None = None
    report: str | None = None
    languages: dict[str, int] = Field(default_factory=dict)
    languages_sampled: int = 0
    splits: dict[str, int] = Field(default_factory=dict)
    used_splits: dict[str, str | None] = Field(default_factory=dict)
    max_train_samples: int | None = None


class TrainingFacts(_Part):
    data: DataFacts | None = None
    recipe_sha256: str
    recipe: dict[str, Any]
    stage: str | None = None
    steps: int = Field(ge=0)
    steps_this_session: int = Field(ge=0)
    epochs: float | None = None
    samples_seen: int | None = None
    final_loss: float | None = None
    wall_seconds: float = Field(ge=0)
    seed: int
    processes: int = Field(ge=1)
    mixed_precision: str | None = None
    hardware: dict[str, Any] = Field(default_factory=dict)


class EvalRun(_Part):
    timestamp: str
    command: str
    out: str | None = None
    code: dict[str, Any] = Field(default_factory=dict)


class EvaluationEntry(_Part):
    kind: Literal["reports", "retrieval"]
    dataset: dict[str, Any]
    run: EvalRun
    decoding: dict[str, Any] | None = None
    protocol: dict[str, Any]
    metrics: dict[str, float | int | None]
    controls: dict[str, dict[str, Any]] = Field(default_factory=dict)
    grounding: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)


class IntendedUse(_Part):
    use: str
    not_for: list[str]
    limits: list[str]
    languages: list[str] = Field(default_factory=list)
    synthetic_training_data: bool | None = None


class WrittenBy(_Part):
    command: str
    timestamp: str
    code: dict[str, Any]


class ModelCard(_Part):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = Field(alias="schema")
    name: str
    written_by: WrittenBy
    model: ModelFacts
    training: TrainingFacts | None = None
    training_note: str = ""
    evaluations: dict[str, EvaluationEntry] = Field(default_factory=dict)
    intended_use: IntendedUse
    derived_from: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------- validation


def _field_problems(err: ValidationError, where: str, limit: int = 6) -> str:
    parts = []
    for problem in err.errors()[:limit]:
        field = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        value = problem.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        parts.append(f"{field}: {problem['msg']}{shown}")
    more = len(err.errors()) - limit
    return f"{where}: " + "; ".join(parts) + (f"; … {more} more" if more > 0 else "")


def validate_card(data: Any, where: str = CARD_JSON) -> dict[str, Any]:
    """``data`` checked against the schema and returned as plain JSON (``where`` names it in errors)."""
    if not isinstance(data, dict):
        raise ModelCardError(f"{where}: a model card is a JSON object, got {type(data).__name__}")
    version = data.get("schema")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelCardError(f"{where}: field schema must be an integer card schema version, got {version!r}")
    if version > CARD_SCHEMA:
        raise ModelCardError(f"{where}: card schema {version} is newer than this meit reads ({CARD_SCHEMA}): "
                             "upgrade meit to read it")
    try:
        card = ModelCard.model_validate(data)
    except ValidationError as err:
        raise ModelCardError(_field_problems(err, where) + f" (card schema {CARD_SCHEMA}, meit/models/card.py)") \
            from err
    return card.model_dump(mode="json", by_alias=True)


# --------------------------------------------------------------------------------------------- files


def has_card(folder: str | Path) -> bool:
    return (Path(folder) / CARD_JSON).is_file()


def read_card(folder: str | Path) -> dict[str, Any]:
    """``FOLDER/model_card.json``, validated; :class:`ModelCardError` names the file and field otherwise."""
    file = Path(folder) / CARD_JSON
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelCardError(f"{file}: no model card (written by meit train / pretrain / export)") from err
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ModelCardError(f"{file}: not readable JSON ({err})") from err
    return validate_card(data, str(file))


def write_card(folder: str | Path, card: dict[str, Any]) -> dict[str, Any]:
    """Validate ``card``, then write ``model_card.json`` and ``MODEL_CARD.md`` (its rendering), each atomically."""
    from meit.models.card_render import render_card

    folder = Path(folder)
    clean = validate_card(card, str(folder / CARD_JSON))
    text = render_card(clean)  # before either file is replaced: a rendering error leaves both as they were
    atomic_write_text(folder / CARD_JSON, json.dumps(clean, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(folder / CARD_MD, text)
    return clean


def update_card(folder: str | Path, change: Callable[[dict[str, Any]], dict[str, Any]],
                create: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Read, change and write the card under a lock, so two evaluations finishing together both land.

    ``create`` makes a card for an artifact without one (e.g. written before cards existed); without it a
    missing card is a :class:`ModelCardError`.
    """
    from filelock import FileLock

    folder = Path(folder)
    with FileLock(str(folder / LOCK_FILE)):
        card = read_card(folder) if has_card(folder) or create is None else create()
        return write_card(folder, change(card))


def regenerate_markdown(folder: str | Path) -> Path:
    """Write ``MODEL_CARD.md`` again from ``model_card.json`` (after a hand edit of the JSON, or a newer renderer)."""
    from meit.models.card_render import render_card

    folder = Path(folder)
    text = render_card(read_card(folder))
    atomic_write_text(folder / CARD_MD, text)
    return folder / CARD_MD


def add_evaluation(card: dict[str, Any], key: str, entry: dict[str, Any]) -> dict[str, Any]:
    """``card`` with ``entry`` under ``evaluations[key]`` (replacing an earlier one of the same key only)."""
    return {**card, "evaluations": {**card.get("evaluations", {}), key: entry}}


# --------------------------------------------------------------------------------------------- never fatal


def guarded(where: str, folder: str | Path, write: Callable[[], Any]) -> str | None:
    """Run ``write``; on any error log a warning, count it under ``where`` and return the message (else None).

    A card is documentation of a run: a bug or a full disk while writing it must not turn a finished
    training or evaluation into a failed one, and must not pass unnoticed either.
    """
    try:
        write()
    except Exception as err:  # whatever broke, the run's real outputs are already written
        _FAILURES[where] += 1
        message = f"{type(err).__name__}: {err}"
        log.warning("model card of %s not written (%s); the %s outputs themselves are complete (failures so "
                    "far: %d)", folder, message, where, _FAILURES[where])
        return message
    return None


def card_failures() -> dict[str, int]:
    """How many card writes failed in this process, by where (``guarded``'s ``where``)."""
    return dict(_FAILURES)
