"""Which encoder, under which input contract, a model config asks for (alone or from an encoder artifact)."""

from __future__ import annotations

from typing import Any

from meit.config import ModelConfig
from meit.data.contract import PROCESSING_FIELDS, TRAINING_ONLY_FIELDS, EncoderContract, checked_contract
from meit.errors import ConfigError, ModelError
from meit.models.encoders import EncoderArtifactMeta
from meit.models.encoders.artifact import contract_overrides

#: ``model.encoder=auto``: take the encoder named by the ``model.encoder_checkpoint`` artifact
AUTO_ENCODER = "auto"


def adopt_encoder_artifact(cfg: ModelConfig, meta: EncoderArtifactMeta) -> ModelConfig:
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
    mine_contract = _declared(cfg, c)
    for key in PROCESSING_FIELDS:
        if key in TRAINING_ONLY_FIELDS:  # how this run trains, not what the weights read
            continue
        mine, theirs = getattr(mine_contract, key), getattr(c, key)
        if key in given and mine != theirs:
            conflicts.append(f"model.{key}={_recipe_value(mine)} (checkpoint: {_recipe_value(theirs)})")
    if conflicts:
        raise ModelError(
            f"model.encoder_checkpoint={meta.directory} holds encoder '{meta.encoder}' trained for {c.describe()}, "
            f"but the recipe sets {', '.join(conflicts)}. Set {contract_overrides(meta.encoder, c)} (or remove "
            f"those keys, or use model.encoder={AUTO_ENCODER}). To run the weights under another contract on "
            f"purpose, point model.encoder_checkpoint at {meta.weights} (no contract check)."
        )
    adopted = {key: getattr(c, key) for key in PROCESSING_FIELDS if key not in TRAINING_ONLY_FIELDS}
    for key in ("image_mean", "image_std"):  # lists in the recipe schema
        if adopted[key] is not None:
            adopted[key] = list(adopted[key])
    return cfg.model_copy(update={"encoder": meta.encoder, "encoder_fs": c.fs, "encoder_seconds": c.seconds,
                                  **adopted})


def _declared(cfg: ModelConfig, artifact: EncoderContract) -> EncoderContract:
    """The contract ``cfg``'s own keys declare at the artifact's rate and length (image defaults resolved, so an
    unset ``image_size`` compares as its mode's default)."""
    values = {key: getattr(cfg, key) for key in PROCESSING_FIELDS}
    try:
        return checked_contract({"leads": 12, "fs": artifact.fs, "seconds": artifact.seconds, **values}, "model.")
    except ConfigError:
        return EncoderContract.from_dict({"fs": artifact.fs, "seconds": artifact.seconds, **values})


def _recipe_value(value: Any) -> str:
    """A contract value as it is written on the command line (``[0.67,40]``, ``null``, ``zscore``)."""
    if value is None:
        return "null"
    if isinstance(value, tuple | list):
        return "[" + ",".join(_recipe_value(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def contract_from_config(cfg: ModelConfig, *, data_fs: int, data_seconds: float) -> EncoderContract:
    """The encoder contract a model config declares (rate and length default to the data's); a
    :class:`ConfigError` names each ``model.<key>`` that is wrong (e.g. ``model.image_size``)."""
    return checked_contract(
        {"leads": 12, "fs": int(cfg.encoder_fs or data_fs), "seconds": float(cfg.encoder_seconds or data_seconds),
         **{key: getattr(cfg, key) for key in PROCESSING_FIELDS}}, "model.")
