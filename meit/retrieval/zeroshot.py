"""Zero-shot classification: one prompt set per finding, an ECG scored by its closeness to each side.

score(ecg, finding) = mean cosine to the positive prompts − mean cosine to the negative prompts
(each side averaged as one normalised prototype). AUROC needs only the ranking, so no threshold is
chosen; labels come from the reference report through the rule-based clinical extractor (the same one
that scores generated reports), or from a ground-truth column when the dataset has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml

from meit.errors import ConfigError
from meit.evaluation.ranking import auroc

DEFAULT_PROMPTS = "default.yaml"


@dataclass(frozen=True)
class PromptSet:
    finding: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]


def load_prompt_sets(path: str | Path | None = None) -> list[PromptSet]:
    """Prompt sets from a YAML file (``finding: {positive: [...], negative: [...]}``), default: the packaged set."""
    from meit.findings import FINDINGS

    if path is None:
        source = "meit/retrieval/prompts/default.yaml"
        text = resources.files("meit.retrieval").joinpath("prompts", DEFAULT_PROMPTS).read_text()
    else:
        source = str(path)
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"prompt file not found: {file}")
        text = file.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {err}") from err
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{source}: expected a mapping finding → {{positive: [...], negative: [...]}}")
    sets = []
    for finding, spec in data.items():
        if finding not in FINDINGS:
            raise ConfigError(f"{source}: unknown finding '{finding}'; known: {', '.join(FINDINGS)}")
        if not isinstance(spec, dict) or set(spec) != {"positive", "negative"}:
            raise ConfigError(f"{source}: '{finding}' needs exactly the keys positive and negative, got {spec!r}")
        for side in ("positive", "negative"):
            prompts = spec[side]
            if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
                raise ConfigError(f"{source}: '{finding}.{side}' must be a non-empty list of strings, got {prompts!r}")
        sets.append(PromptSet(finding, tuple(spec["positive"]), tuple(spec["negative"])))
    return sets


def zero_shot_scores(model: Any, ecg_embeddings: torch.Tensor,
                     prompt_sets: Sequence[PromptSet]) -> dict[str, torch.Tensor]:
    """Per finding, one score per ECG (higher = more likely present); all prompts embedded in one pass."""
    prompts = sorted({p for ps in prompt_sets for p in (*ps.positive, *ps.negative)})
    embedded = dict(zip(prompts, model.embed_texts(prompts), strict=True))

    def prototype(side: Sequence[str]) -> torch.Tensor:
        return F.normalize(torch.stack([embedded[p] for p in side]).mean(0), dim=0)

    return {ps.finding: ecg_embeddings.float() @ (prototype(ps.positive) - prototype(ps.negative))
            for ps in prompt_sets}


def auroc_per_finding(scores: Mapping[str, torch.Tensor], findings: Sequence[frozenset[str]],
                      min_positives: int = 5) -> dict[str, dict[str, Any]]:
    """AUROC of each finding's scores against labels; findings with too few positives or negatives are skipped
    (reported with their counts and ``auroc: null`` so nothing disappears silently)."""
    out: dict[str, dict[str, Any]] = {}
    for finding, values in scores.items():
        labels = [int(finding in f) for f in findings]
        positives = sum(labels)
        negatives = len(labels) - positives
        scored = positives >= min_positives and negatives >= min_positives
        out[finding] = {
            "auroc": auroc(values.tolist(), labels) if scored else None,
            "positives": positives,
            "negatives": negatives,
        }
    return out


def zero_shot_report(model: Any, ecg_embeddings: torch.Tensor, reports: Sequence[str],
                     prompt_sets: Sequence[PromptSet], min_positives: int = 5) -> dict[str, Any]:
    """AUROC per finding (labels from the reports) with counts, why a finding was not scored, and the macro mean."""
    from meit.findings import extract_findings

    findings = [extract_findings(r) for r in reports]
    per_finding = auroc_per_finding(zero_shot_scores(model, ecg_embeddings, prompt_sets), findings, min_positives)
    for entry in per_finding.values():
        if entry["auroc"] is None:
            short = [f"{side} {entry[side]} < {min_positives}" for side in ("positives", "negatives")
                     if entry[side] < min_positives]
            entry["skipped"] = "too few " + " and ".join(short)
    scored = [v["auroc"] for v in per_finding.values() if v["auroc"] is not None]
    return {"n": len(findings), "min_positives": min_positives, "scored": len(scored),
            "macro_auroc": sum(scored) / len(scored) if scored else None, "findings": per_finding}


def plot_auroc(per_finding: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Bars of AUROC per finding, chance line at 0.5; unscored findings keep their slot, marked '–'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_finding)
    values = [per_finding[n]["auroc"] if per_finding[n]["auroc"] is not None else 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(names) + 1.5), 4.0))
    ax.bar(range(len(names)), values, color="tab:blue")
    for position, name in enumerate(names):
        if per_finding[name]["auroc"] is None:  # too few positives/negatives: shown, not dropped
            ax.text(position, 0.02, "–", ha="center", va="bottom", fontsize=10)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{n} (n+={per_finding[n]['positives']})" for n in names], rotation=60, ha="right",
                       fontsize=7)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("AUROC")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
