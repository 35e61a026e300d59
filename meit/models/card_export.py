"""The model card of a ``meit export`` copy: the exported weights' own facts, the source's training record.

The training, data and evaluation record of the source artifact stay true of the copy (the same run made
it); the model facts are re-read from the exported model, since merging LoRA changes what the weights are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meit.hashing import file_sha256
from meit.models.card import CARD_JSON, ModelCardError, guarded, has_card, read_card, write_card
from meit.models.card_facts import meit_model_facts, new_card


def export_card(source: Path, model: Any, merge_lora: bool) -> dict[str, Any]:
    """The card of an export of ``source`` (already reloaded as ``model``)."""
    facts = meit_model_facts(model, trained=False)
    if merge_lora and facts["adaptation"]["method"] == "lora":  # the live model stays unmerged; the copy is not
        facts["adaptation"]["method"] = "merged-lora"
        facts["parameters"]["total"] -= facts["parameters"]["by_part"].pop("lora", 0)
    operation = "meit export" + (" --merge-lora" if merge_lora else "")
    derived: dict[str, Any] = {"checkpoint": str(source), "operation": operation}
    if not has_card(source):
        return new_card(source.resolve().parent.name, facts, None, derived_from=derived,
                        training_note=f"Not recorded: the exported artifact {source} has no model card.")
    try:
        old = read_card(source)
    except ModelCardError as err:
        derived["source_card_problem"] = str(err)
        return new_card(source.resolve().parent.name, facts, None, derived_from=derived,
                        training_note=f"Not recorded: the model card of {source} could not be read.")
    derived["source_card_sha256"] = file_sha256(source / CARD_JSON)
    if old.get("evaluations"):
        derived["evaluations_note"] = (f"Measured on the source artifact {source} before `{operation}`"
                                       + (" (merging LoRA changes the weights by rounding only)." if merge_lora
                                          else " (same weights)."))
    trained = (old["model"].get("parameters") or {}).get("trainable")
    facts["parameters"]["trainable"] = trained  # what training trained: the copy itself trains nothing
    return new_card(old["name"], facts, old.get("training"), training_note=old.get("training_note", ""),
                    evaluations=old.get("evaluations"), derived_from=derived)


def write_export_card(source: str | Path, out: str | Path, model: Any, merge_lora: bool) -> str | None:
    """Write ``out``'s card (logged and counted, never raised); the error message when it failed."""
    return guarded("export", out, lambda: write_card(out, export_card(Path(source), model, merge_lora)))
