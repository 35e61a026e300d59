"""Probe of the final save of a sharded run (ZeRO-3, FSDP2): which parameters it gathers, and whether its
artifact equals the one the previous full-gather code wrote. Test code only: the launched script wraps
``meit.training.engine.save_final`` from the outside, nothing in meit knows about it."""

from __future__ import annotations

import json
from pathlib import Path

#: ``python PROBE OUT_JSON train RECIPE …``: counts the collectives of the final save (ZeRO-3's
#: GatheredParameters, FSDP2's DTensor.full_tensor), then writes ``OUTPUT_DIR/final_full`` the old way
#: (every parameter gathered) for comparison
PROBE = r'''
import json, os, sys
from pathlib import Path

import torch
from meit.cli import main
from meit.training import engine
from meit.training.loop import is_zero3

report = Path(sys.argv.pop(1))
counting = [False]
seen = []

import deepspeed
from torch.distributed.tensor import DTensor

Gathered = deepspeed.zero.GatheredParameters

class CountingGathered(Gathered):
    def __init__(self, params, *args, **kwargs):
        params = list(params) if isinstance(params, (list, tuple)) else [params]
        if counting[0]:
            seen.extend(("zero3", id(p)) for p in params if hasattr(p, "ds_id"))
        super().__init__(params, *args, **kwargs)

deepspeed.zero.GatheredParameters = CountingGathered
full_tensor = DTensor.full_tensor

def counting_full_tensor(self, *args, **kwargs):
    if counting[0]:
        seen.append(("fsdp", self._local_tensor.data_ptr()))
    return full_tensor(self, *args, **kwargs)

DTensor.full_tensor = counting_full_tensor
save_final = engine.save_final

def probed_save_final(model, accelerator, final_dir, keys=None):
    counting[0] = True
    save_final(model, accelerator, final_dir, *([] if keys is None else [keys]))
    counting[0] = False
    unwrapped = accelerator.unwrap_model(model)
    params = dict(model.named_parameters())
    by_id = {id(p): n for n, p in unwrapped.named_parameters()}
    by_ptr = {p._local_tensor.data_ptr(): n for n, p in params.items() if isinstance(p, DTensor)}
    names = [by_id[x] if kind == "zero3" else by_ptr[x] for kind, x in seen]
    full_dir = Path(final_dir).parent / "final_full"
    if is_zero3(accelerator):  # the code before: one GatheredParameters over every parameter
        with Gathered(list(unwrapped.parameters()), modifier_rank=None):
            if accelerator.is_main_process:
                unwrapped.save_pretrained(full_dir)
    else:  # the code before: the whole state dict gathered
        from meit.training.fsdp import gather_state, sync_buffers

        sync_buffers(model, accelerator.device)
        state = gather_state(model)
        if accelerator.is_main_process:
            unwrapped.save_pretrained(full_dir, state_dict=state)
    if accelerator.is_main_process:
        report.write_text(json.dumps({
            "gathered": names,
            "trainable": sorted(n for n, p in unwrapped.named_parameters() if p.requires_grad),
            "parameters": len(list(unwrapped.parameters())),
        }))
    accelerator.wait_for_everyone()

engine.save_final = probed_save_final
sys.exit(main(sys.argv[1:]))
'''


def tiny_llama_folder() -> str:
    """The tiny Llama backbone as a local folder: a source the base can be re-created from, so its LoRA
    artifact holds the adapter only (``tiny-llama`` by name puts the base in the artifact too)."""
    from meit.models.backbones import resolve_backbone
    from meit.models.tiny import tiny_path

    return str(tiny_path(resolve_backbone("tiny-llama")))


def check_probe(report: Path, run: Path, *, adapter_only: bool) -> dict:
    """The gather touched only what the artifact needs; the artifact is byte for byte the full-gather one."""
    seen = json.loads(report.read_text())
    gathered, trainable = seen["gathered"], seen["trainable"]
    assert len(gathered) == len(set(gathered)), f"a parameter was gathered twice: {sorted(gathered)}"
    if adapter_only:
        # here every non-base tensor trains (encoder, projector, LoRA): exactly the trainable ones
        assert sorted(gathered) == trainable, sorted(set(gathered) ^ set(trainable))
        assert len(gathered) < seen["parameters"], (len(gathered), seen["parameters"])
        assert not (run / "final" / "llm").exists()
    else:
        # the artifact holds the base: everything is gathered
        assert len(gathered) == seen["parameters"], (len(gathered), seen["parameters"])
        assert (run / "final" / "llm" / "model.safetensors").is_file()
    new = sorted(p.relative_to(run / "final") for p in (run / "final").rglob("*") if p.is_file())
    old = sorted(p.relative_to(run / "final_full") for p in (run / "final_full").rglob("*") if p.is_file())
    for after in ("recipe.yaml", "model_card.json", "MODEL_CARD.md"):  # written by the engine after the save
        new.remove(Path(after))
    assert new == old, (new, old)
    for name in new:
        assert (run / "final" / name).read_bytes() == (run / "final_full" / name).read_bytes(), name
    check_card_counts(run / "final")
    return seen


def check_card_counts(final: Path) -> None:
    """The card a sharded run wrote counts every parameter whole (not this rank's shards)."""
    from meit.models import MeitModel
    from meit.models.card import read_card

    card = read_card(final)
    model = MeitModel.from_pretrained(final)
    assert card["model"]["parameters"]["total"] == sum(p.numel() for p in model.parameters())
    assert card["training"]["processes"] == 2 and card["model"]["parameters"]["trainable"] > 0
