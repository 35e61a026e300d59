"""Convert public ECG-encoder checkpoints (MERL, ECGFounder) into meit encoder artifacts.

Reads the user's file safely (:func:`read_state_file`), unwraps the nesting the upstream training code
produces, keeps only the encoder's tensors (reporting what else was in the file), infers the variant
from key names and shapes, checks that every key loads strictly, and writes ``encoder.json`` +
``encoder.safetensors`` with the contract the weights were trained for and a sha256 of the source.

Upstream layouts (read from source; see docs/encoders.md):

* MERL (cheliu-computation/MERL-ICML2024 @ 38799b7): ``*_encoder.pth`` is the encoder's bare state dict;
  ``*_ckpt.pth`` / ``*_final_total.pth`` is the whole CLIP model (``ecg_encoder.*`` plus the text
  encoder ``lm_model.*`` and heads ``proj_t``, ``proj_e``, ``downconv``, ``att_pool_head``,
  ``linear1``/``linear2``); ``*_<epoch>_ckpt.pth`` is ``{"epoch", "model_state_dict", "optimizer_state_dict"}``
  saved from the DDP wrapper (``module.`` prefix).
* ECGFounder (PKUDigitalHealth/ECGFounder @ 04edac7): ``{"state_dict": Net1D state dict, …}``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from meit.data.contract import EncoderContract
from meit.errors import ModelError
from meit.hashing import file_sha256
from meit.models.encoders.artifact import read_state_file, state_fit_problems, write_encoder_artifact
from meit.models.encoders.ecgfounder import ECGFOUNDER_CONTRACT
from meit.models.encoders.merl import MERL_CONTRACT, MERL_RESNETS, MERL_VITS
from meit.models.encoders.registry import build_encoder

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("merl-resnet", "merl-vit", "ecgfounder")

MERL_REPO, MERL_COMMIT = "cheliu-computation/MERL-ICML2024", "38799b7deb1c9958f41badcfacc6a95192787cc4"
ECGFOUNDER_REPO, ECGFOUNDER_COMMIT = "PKUDigitalHealth/ECGFounder", "04edac702b61c91face519774ddcc0cd712fef23"

#: entries that hold the state dict inside a checkpoint dict, tried in order
_CONTAINERS = ("state_dict", "model_state_dict", "model", "module")
#: wrapper prefixes: DDP / DataParallel, torch.compile
_WRAPPERS = ("module.", "_orig_mod.")

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class _Kind:
    upstream: str
    repo: str
    commit: str
    contract: EncoderContract
    #: encoder keys the upstream module registers but never uses (dropped, with the reason)
    unused: Callable[[str], str | None]
    infer: Callable[[Shapes], str]
    #: accepted ``--variant`` spellings → registry name
    aliases: dict[str, str]


def _merl_resnet_unused(key: str) -> str | None:
    if key.startswith("linear."):
        return "classification head upstream registers but its encoder never calls"
    return None


def _merl_vit_unused(key: str) -> str | None:
    if key.startswith("head."):
        return "classification head (set by MERL's fine-tuning, not part of the encoder)"
    return None


_BN = re.compile(r"(^first_bn\.|\.bn[123]\.)")


def _ecgfounder_unused(key: str) -> str | None:
    if key.startswith("dense."):
        return "150-class classification head"
    if _BN.search(key):
        return "BatchNorm registered but not run in the released configuration (use_bn=False)"
    return None


def _infer_merl_resnet(shapes: Shapes) -> str:
    counts: Counter[int] = Counter()
    for key in shapes:
        m = re.match(r"layer([1-4])\.(\d+)\.conv1\.weight$", key)
        if m:
            counts[int(m.group(1))] = max(counts[int(m.group(1))], int(m.group(2)) + 1)
    blocks = tuple(counts.get(i, 0) for i in range(1, 5))
    if not any(blocks):
        raise ModelError("no 'layerN.M.conv1.weight' keys in the checkpoint: not a MERL ResNet encoder")
    bottleneck = any(re.match(r"layer[1-4]\.\d+\.conv3\.weight$", k) for k in shapes)
    for depth, (block, layout) in MERL_RESNETS.items():
        if layout == blocks and (block.expansion == 4) == bottleneck:
            return f"merl-resnet1d-{depth}"
    kind = "bottleneck" if bottleneck else "basic"
    raise ModelError(f"no MERL ResNet has {blocks} {kind} blocks per stage (known: "
                     + ", ".join(f"{d}: {lay}" for d, (_, lay) in MERL_RESNETS.items()) + ")")


def _infer_merl_vit(shapes: Shapes) -> str:
    patch = shapes.get("to_patch_embedding.weight")
    if patch is None:
        raise ModelError("no 'to_patch_embedding.weight' in the checkpoint: not a MERL ViT encoder")
    width = patch[0]
    depth = len({m.group(1) for k in shapes if (m := re.match(r"block(\d+)\.", k))})
    mlp = shapes.get("block0.ff.fn.net.0.weight", (0,))[0]
    for size, (w, d, _, h) in MERL_VITS.items():
        if (w, d, h) == (width, depth, mlp):
            return f"merl-vit1d-{size}"
    raise ModelError(f"no MERL ViT has width {width}, depth {depth}, MLP width {mlp} (known: "
                     + ", ".join(f"{s}: {v[0]}/{v[1]}/{v[3]}" for s, v in MERL_VITS.items()) + ")")


def _infer_ecgfounder(shapes: Shapes) -> str:
    first = shapes.get("first_conv.conv.weight")
    if first is None:
        raise ModelError("no 'first_conv.conv.weight' in the checkpoint: not an ECGFounder Net1D")
    if first[1] != 12:
        raise ModelError(f"this ECGFounder checkpoint reads {first[1]} lead(s) (first_conv.conv.weight "
                         f"{list(first)}); only the 12-lead model is supported (meit feeds 12-lead ECGs)")
    return "ecgfounder-net1d"


def _aliases(names: dict[str, str]) -> dict[str, str]:
    """registry name, its last part (``18``, ``tiny``) and upstream's name (``resnet18``, ``vit_tiny``)."""
    out: dict[str, str] = {}
    for upstream, name in names.items():
        out.update({name: name, name.rsplit("-", 1)[-1]: name, upstream: name})
    return out


KIND_SPECS: dict[str, _Kind] = {
    "merl-resnet": _Kind("MERL ResNet1d", MERL_REPO, MERL_COMMIT, MERL_CONTRACT, _merl_resnet_unused,
                         _infer_merl_resnet, _aliases({f"resnet{d}": f"merl-resnet1d-{d}" for d in MERL_RESNETS})),
    "merl-vit": _Kind("MERL ViT1d", MERL_REPO, MERL_COMMIT, MERL_CONTRACT, _merl_vit_unused,
                      _infer_merl_vit, _aliases({f"vit_{s}": f"merl-vit1d-{s}" for s in MERL_VITS})),
    "ecgfounder": _Kind("ECGFounder Net1D", ECGFOUNDER_REPO, ECGFOUNDER_COMMIT, ECGFOUNDER_CONTRACT,
                        _ecgfounder_unused, _infer_ecgfounder, _aliases({"12_lead_ECGFounder": "ecgfounder-net1d"})),
}

# --------------------------------------------------------------------------------------------- helpers


def _unwrap(obj: Any, file: Path) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """The tensor state dict inside ``obj``, the container path taken, and the other entries left behind."""
    path: list[str] = []
    left: list[str] = []
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((k for k in _CONTAINERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise ModelError(f"{file}: no state dict found (top-level entries: {', '.join(map(str, obj)) or 'none'}; "
                             f"expected tensors or one of {', '.join(_CONTAINERS)})")
        left += [f"{'.'.join(path) + '.' if path else ''}{k}" for k in obj if k != inner]
        path.append(inner)
        obj = obj[inner]
    if not isinstance(obj, dict):
        raise ModelError(f"{file}: holds a {type(obj).__name__}, not a state dict")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    left += [f"{'.'.join(path) + '.' if path else ''}{k} (not a tensor)" for k, v in obj.items()
             if not isinstance(v, torch.Tensor)]
    return state, path, left


def _strip_wrappers(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    stripped = []
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPERS:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped.append(prefix)
                changed = True
    return state, stripped


_NOT_ENCODER = "not the ECG encoder (text encoder, projection heads of the CLIP model)"


def _group(key: str, reason: str) -> str:
    """A readable family for a dropped key: ``lm_model.*``, ``stage_list.*.block_list.*.bn1.*``."""
    if reason == _NOT_ENCODER or "." not in key:
        return key.split(".", 1)[0] + (".*" if "." in key else "")
    return re.sub(r"\.\d+(?=\.)", ".*", key.rsplit(".", 1)[0]) + ".*"


def _select_encoder(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str], bool]:
    """Inside a whole CLIP-style model keep ``ecg_encoder.*`` (prefix removed); the rest is dropped."""
    prefix = "ecg_encoder."
    if not any(k.startswith(prefix) for k in state):
        return state, {}, False
    kept = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return kept, {k: _NOT_ENCODER for k in state if not k.startswith(prefix)}, True


def _check_bn_untrained(dropped: Mapping[str, str], state: Mapping[str, torch.Tensor], file: Path) -> None:
    """ECGFounder's BatchNorm tensors may be dropped only if they never ran (else the file is not the release)."""
    def ran(key: str) -> bool:
        value = state[key]
        if key.endswith("num_batches_tracked"):
            return int(value) > 0
        if key.endswith("running_mean"):
            return bool(value.abs().max() > 0)
        if key.endswith("running_var"):
            return bool((value - 1).abs().max() > 0)
        return False

    trained = [k for k in dropped if _BN.search(k) and ran(k)]
    if trained:
        some = ", ".join(trained[:3]) + ("…" if len(trained) > 3 else "")
        raise ModelError(
            f"{file}: BatchNorm statistics were updated during training ({some}), so this file "
            "was trained with use_bn=True. The released ECGFounder configuration (use_bn=False, as in upstream "
            "ptbxl_eval.py / finetune_model.py) does not run BatchNorm; meit implements only that one."
        )


def _resolve_variant(spec: _Kind, kind: str, variant: str | None, inferred: str) -> str:
    if variant is None:
        return inferred
    name = spec.aliases.get(variant.strip())
    if name is None:
        known = sorted(set(spec.aliases.values()))
        raise ModelError(f"--variant {variant!r} is not a {kind} variant (known: {', '.join(known)})")
    if name != inferred:
        log.warning("--variant %s given, but the checkpoint's keys look like %s", name, inferred)
    return name


# --------------------------------------------------------------------------------------------- entry point


def import_checkpoint(kind: str, path: str | Path, out_dir: str | Path, variant: str | None = None) -> Path:
    """Convert the upstream checkpoint at ``path`` into an encoder artifact at ``out_dir``; returns ``out_dir``.

    ``kind`` is one of :data:`KINDS`; ``variant`` (e.g. ``18``, ``resnet18``, ``merl-resnet1d-18``,
    ``tiny``) overrides the one inferred from the keys. Raises :class:`ModelError` listing every missing,
    unexpected or misshaped key when the file does not fit.
    """
    if kind not in KIND_SPECS:
        raise ModelError(f"unknown checkpoint kind {kind!r} (known: {', '.join(KINDS)})")
    spec = KIND_SPECS[kind]
    file = Path(path).expanduser().resolve()
    raw = read_state_file(file)
    state, containers, left_behind = _unwrap(raw, file)
    state, wrappers = _strip_wrappers(state)
    state, dropped, in_clip = _select_encoder(state)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    unused = {k: r for k in state if (r := spec.unused(k)) is not None}
    if kind == "ecgfounder":
        _check_bn_untrained(unused, state, file)
    state = {k: v for k, v in state.items() if k not in unused}
    dropped.update(unused)
    if not state:
        raise ModelError(f"{file}: no encoder tensors left after unwrapping ({len(dropped)} dropped)")

    name = _resolve_variant(spec, kind, variant, spec.infer(shapes))
    encoder = build_encoder(name, spec.contract)
    problem = state_fit_problems(encoder, state, file)
    if problem:
        raise ModelError(f"{problem} (as {name}; pass --variant to choose another)")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelError(f"{file}: NaN or inf in {', '.join(bad[:8])}")
    encoder.load_state_dict(state, strict=True)

    groups = Counter(_group(k, r) for k, r in dropped.items())
    reasons = Counter(dropped.values())
    source = {
        "kind": kind,
        "upstream": spec.upstream,
        "upstream_repo": f"https://github.com/{spec.repo}",
        "layout_from_commit": spec.commit,
        "file": str(file),
        "file_name": file.name,
        "sha256": file_sha256(file),
        "size_bytes": file.stat().st_size,
        "nesting": {"containers": containers, "prefixes_stripped": wrappers + (["ecg_encoder."] if in_clip else []),
                    "other_entries": left_behind},
        "kept_tensors": len(state),
        "dropped_tensors": len(dropped),
        "dropped_groups": dict(sorted(groups.items())),
        "dropped_reasons": dict(reasons),
    }
    for reason, count in reasons.items():
        log.info("dropped %d tensor(s): %s", count, reason)
    out = write_encoder_artifact(out_dir, name, encoder, spec.contract, kwargs={}, source=source)
    log.info("wrote %s (%s, %d tensors)", out, name, len(state))
    return out
