"""The encoder artifact shared by the whole project: a folder any encoder producer writes and the model reads.

``DIR/encoder.safetensors`` holds the encoder's state dict (keys without prefix); ``DIR/encoder.json``::

    {"format": "meit-encoder", "version": 1, "encoder": "<registry name>",
     "contract": {"leads": 12, "fs": 500, "seconds": 10.0, "normalisation": "minmax",
                  "bandpass": null, "bandpass_order": 2, "notch_hz": null, "baseline": "none"},
     "kwargs": {...builder kwargs...}, "source": {...free-form provenance...}}

The contract is the input the weights were trained for; loading checks it (see ``load_encoder_checkpoint``)
so weights are never silently fed data at another rate, length, scaling or filtering. The filtering fields
may be absent (files written before they existed): they then take their defaults, no filtering. A contract
that a version-1 reader would misread (record-wide normalisation or any filtering) is written as version 2,
which older meit refuses with "upgrade meit" instead of dropping the filters; an image encoder's contract (the
``image_*`` fields: mode, size, dpi, per-channel mean/std, training augmentation) is written as version 3,
which a version-2 reader refuses the same way instead of feeding the weights a signal; a paper contract that
denoises the page (``image_denoise``) is written as version 4, so a version-3 reader cannot feed those weights
undenoised pages. Also here: the one safe
reader of weight files (safetensors, or ``torch.load(weights_only=True)`` — never a full unpickle).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from meit.data.contract import EncoderContract, contract_problems
from meit.errors import ModelError
from meit.models.encoders.registry import ENCODERS
from meit.publish import staged_folder, write_safetensors

ARTIFACT_FORMAT = "meit-encoder"
#: the newest version this meit reads and writes; a contract an older version can express is written as that
#: (1: per-lead or no normalisation, no filtering; 2: record-wide normalisation and filters; 3: images;
#: 4: denoised paper images)
ARTIFACT_VERSION = 4
META_FILE = "encoder.json"
WEIGHTS_FILE = "encoder.safetensors"
#: the normalisations version 1 of the format knew
_V1_NORMALISATIONS = ("zscore", "minmax", "none")


@dataclass(frozen=True)
class EncoderArtifactMeta:
    """What ``encoder.json`` says, validated."""

    directory: Path
    encoder: str
    contract: EncoderContract
    kwargs: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    version: int = ARTIFACT_VERSION

    @property
    def weights(self) -> Path:
        return self.directory / WEIGHTS_FILE


# --------------------------------------------------------------------------------------------- contract


def _format_version(contract: EncoderContract) -> int:
    """The oldest format version whose reader understands ``contract`` fully."""
    if contract.is_image:
        return 4 if contract.image_denoise != "none" else 3
    return 1 if contract.normalisation in _V1_NORMALISATIONS and not contract.filtered else 2


def contract_overrides(name: str, contract: EncoderContract) -> str:
    """The recipe overrides that select ``name`` under ``contract`` (for error messages and hints)."""
    text = (f"model.encoder={name} model.encoder_fs={contract.fs} model.encoder_seconds={contract.seconds:g} "
            f"model.normalisation={contract.normalisation}")
    if contract.is_image:
        assert contract.image_size is not None and contract.image_mean is not None and contract.image_std is not None
        dpi = f"model.image_dpi={contract.image_dpi} " if contract.image_dpi is not None else ""
        text += (f" model.image_mode={contract.image_mode} 'model.image_size=[{contract.image_size[0]},"
                 f"{contract.image_size[1]}]' {dpi}"
                 f"'model.image_mean=[{','.join(f'{v:g}' for v in contract.image_mean)}]' "
                 f"'model.image_std=[{','.join(f'{v:g}' for v in contract.image_std)}]'")
        if contract.image_denoise != "none":
            text += f" model.image_denoise={contract.image_denoise}"
    if contract.notch_hz is not None:
        text += f" model.notch_hz={contract.notch_hz:g}"
    if contract.bandpass is not None:
        edges = ",".join("null" if v is None else f"{v:g}" for v in contract.bandpass)
        text += f" 'model.bandpass=[{edges}]' model.bandpass_order={contract.bandpass_order}"  # quoted for shells
    if contract.baseline != "none":
        text += f" model.baseline={contract.baseline}"
    return text


# --------------------------------------------------------------------------------------------- writing


def _state_of(encoder_or_state_dict: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    items = (encoder_or_state_dict.state_dict() if isinstance(encoder_or_state_dict, nn.Module)
             else encoder_or_state_dict)
    state: dict[str, torch.Tensor] = {}
    for key, value in items.items():
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"encoder state dict entry '{key}' is a {type(value).__name__}, not a tensor")
        # clone: safetensors refuses tensors that share storage
        state[key] = value.detach().to("cpu").contiguous().clone()
    if not state:
        raise ModelError("encoder state dict is empty: nothing to write")
    return state


def write_encoder_artifact(
    directory: str | Path,
    encoder_name: str,
    encoder_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    contract: EncoderContract,
    kwargs: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Write an encoder artifact to ``directory`` atomically (:mod:`meit.publish`); returns its path.

    ``directory`` may exist only empty or as a previous meit output (which is replaced), so a typo
    can never clobber an unrelated folder.
    """
    with staged_folder(directory, "encoder artifact", also_owned_if=(META_FILE,)) as tmp:
        fill_encoder_artifact(tmp, encoder_name, encoder_or_state_dict, contract, kwargs, source)
    return Path(directory).expanduser()


def fill_encoder_artifact(
    folder: Path,
    encoder_name: str,
    encoder_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    contract: EncoderContract,
    kwargs: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> None:
    """Write the artifact's two files into ``folder``, a staged folder its caller publishes.

    Used directly by writers whose output is an encoder artifact plus more (``meit pretrain``'s model).
    """
    if encoder_name not in ENCODERS:
        raise ModelError(f"cannot write an encoder artifact for unknown encoder '{encoder_name}' "
                         f"(known: {', '.join(ENCODERS)})")
    problems = contract_problems(contract.to_dict())
    if problems:
        raise ModelError(f"invalid encoder contract: {'; '.join(problems)}")
    meta = {
        "format": ARTIFACT_FORMAT,
        "version": _format_version(contract),
        "encoder": encoder_name,
        "contract": contract.to_dict(),
        "kwargs": dict(kwargs or {}),
        "source": dict(source or {}),
    }
    try:
        text = json.dumps(meta, indent=2, sort_keys=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ModelError(f"encoder.json: kwargs and source must be plain JSON values ({err})") from err
    state = _state_of(encoder_or_state_dict)

    # two metadata keys: written in sorted order, so the same weights give the same bytes in every process
    write_safetensors(folder / WEIGHTS_FILE, state, {"format": ARTIFACT_FORMAT, "encoder": encoder_name})
    (folder / META_FILE).write_text(text)


# --------------------------------------------------------------------------------------------- reading


def read_encoder_metadata(directory: str | Path) -> EncoderArtifactMeta | None:
    """``encoder.json`` of ``directory``, validated; None when ``directory`` is not such a folder.

    A folder that has ``encoder.json`` but a broken one raises :class:`ModelError` naming the file and field.
    """
    folder = Path(directory).expanduser()
    file = folder / META_FILE
    if not folder.is_dir() or not file.is_file():
        return None
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{file}: not readable JSON ({err})") from err
    if not isinstance(data, dict):
        raise ModelError(f"{file}: expected a JSON object, got {type(data).__name__}")
    if data.get("format") != ARTIFACT_FORMAT:
        raise ModelError(f"{file}: 'format' must be '{ARTIFACT_FORMAT}', got {data.get('format')!r}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelError(f"{file}: 'version' must be a positive integer, got {version!r}")
    if version > ARTIFACT_VERSION:  # e.g. an image contract (3) read by a meit that knows only signals (2)
        raise ModelError(f"{file}: 'version' {version} was written by a newer meit (this one reads "
                         f"{ARTIFACT_VERSION}); upgrade meit")
    name = data.get("encoder")
    if not isinstance(name, str) or not name:
        raise ModelError(f"{file}: 'encoder' must be a registry name such as 'merl-resnet1d-18', got {name!r}")
    problems = contract_problems(data.get("contract"))
    if problems:
        raise ModelError(f"{file}: {'; '.join(problems)}")
    for key in ("kwargs", "source"):
        if not isinstance(data.get(key, {}), dict):
            raise ModelError(f"{file}: '{key}' must be a JSON object, got {type(data[key]).__name__}")
    if not (folder / WEIGHTS_FILE).is_file():
        raise ModelError(f"{folder}: has {META_FILE} but no {WEIGHTS_FILE}")
    c = data["contract"]
    if version < 3 and c.get("image_mode", "none") != "none":
        raise ModelError(f"{file}: 'contract.image_mode' {c['image_mode']!r} needs format version 3, but the file says "
                         f"{version}: it was not written by meit")
    if version < 4 and c.get("image_denoise", "none") != "none":
        raise ModelError(f"{file}: 'contract.image_denoise' {c['image_denoise']!r} needs format version 4, but the "
                         f"file says {version}: it was not written by meit")
    contract = EncoderContract.from_dict({**c, "seconds": float(c["seconds"])})
    return EncoderArtifactMeta(directory=folder, encoder=name, contract=contract, kwargs=dict(data.get("kwargs", {})),
                               source=dict(data.get("source", {})), version=version)


def check_artifact_matches(meta: EncoderArtifactMeta, encoder_name: str | None, contract: EncoderContract) -> None:
    """Raise :class:`ModelError` when the encoder being loaded is not the one the artifact was trained as."""
    wrong_name = encoder_name is not None and encoder_name != meta.encoder
    if not wrong_name and contract == meta.contract:
        return
    have = f"'{encoder_name}'" if encoder_name else "an encoder"
    raise ModelError(
        f"encoder checkpoint {meta.directory} holds '{meta.encoder}' trained for {meta.contract.describe()}, "
        f"but {have} is being loaded for {contract.describe()}. Set {contract_overrides(meta.encoder, meta.contract)} "
        f"(or leave those keys unset: MeitModel.build then takes them from {META_FILE}). To use the weights "
        f"under another contract on purpose, point model.encoder_checkpoint at {meta.weights} (no contract check)."
    )


def state_fit_problems(encoder: nn.Module, state: Mapping[str, torch.Tensor], where: str | Path,
                       role: str = "encoder") -> str | None:
    """None when ``state`` loads strictly into ``encoder`` (any module: ``role`` names it in the message);
    otherwise every missing/unexpected/misshaped key, so a mismatch is never torch's raw size error."""
    own = encoder.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} (file {list(state[k].shape)}, {role} {list(own[k].shape)})"
              for k in own if k in state and state[k].shape != own[k].shape]
    if not (missing or unexpected or shapes):
        return None

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:12]) + (f" … ({len(keys)} in all)" if len(keys) > 12 else "")

    parts = [f"{label}: {some(keys)}" for label, keys in
             (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if keys]
    return f"{where} does not fit {type(encoder).__name__}: " + "; ".join(parts)


def read_state_file(path: str | Path) -> Any:
    """Read a weights file safely: safetensors, or a torch file with ``weights_only=True`` only.

    A file that needs a full unpickle is refused with instructions to re-save its tensors.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelError(f"checkpoint file not found: {file}")
    if file.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except (SafetensorError, OSError) as err:
            raise ModelError(f"{file}: not a readable safetensors file ({err})") from err
    try:
        return torch.load(str(file), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, ValueError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(
            f"{file} cannot be read with torch.load(weights_only=True): {first}. meit never unpickles "
            "arbitrary objects (that can run code). If you trust this file, re-save its tensors once, e.g. "
            f"python -c \"import torch; c = torch.load('{file}', map_location='cpu', weights_only=False); "
            "c = c.get('state_dict', c.get('model_state_dict', c)) if isinstance(c, dict) else c.state_dict(); "
            f"torch.save({{k: v for k, v in c.items() if torch.is_tensor(v)}}, '{file.with_suffix('.clean.pt')}')\" "
            "and import that file."
        ) from err
