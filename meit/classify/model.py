"""An ECG encoder (signal or image) with a linear multi-label head on its pooled vector.

Its folder is an encoder artifact (``encoder.json`` + ``encoder.safetensors``) plus ``head.safetensors`` and
``classifier.json``, so the encoder a classifier learnt can start a report model
(``meit train model.encoder_checkpoint=RUN/final``), a retrieval tower or another classifier.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from meit.errors import ModelError
from meit.models.encoders import build_encoder, read_encoder_metadata
from meit.models.encoders.artifact import fill_encoder_artifact, read_state_file
from meit.publish import staged_folder, write_safetensors

CLASSIFIER_FILE = "classifier.json"
HEAD_FILE = "head.safetensors"
FORMAT = "meit-classifier"
VERSION = 1


class EcgClassifier(nn.Module):
    """``forward(ecg [B, …]) -> logits [B, C]``: the encoder's pooled vector, dropout, a linear layer."""

    def __init__(self, encoder: nn.Module, encoder_name: str, labels: tuple[str, ...], label_source: str,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if not labels:
            raise ModelError("a classifier needs at least one label")
        self.encoder = encoder
        self.encoder_name = encoder_name
        self.labels = tuple(labels)
        self.label_source = label_source
        self.dropout = nn.Dropout(dropout)
        self.dropout_p = float(dropout)
        self.head = nn.Linear(encoder.out_dim, len(labels))

    @property
    def contract(self) -> Any:
        return self.encoder.contract

    def forward(self, ecg: torch.Tensor) -> torch.Tensor:
        pooled = self.encoder(ecg, pooled=True)[:, 0]
        return self.head(self.dropout(pooled))

    def reset_head(self, labels: tuple[str, ...], label_source: str) -> None:
        """A fresh head for another label set (the second stage of a two-stage run with other labels)."""
        self.labels, self.label_source = tuple(labels), label_source
        self.head = nn.Linear(self.encoder.out_dim, len(labels))

    @classmethod
    def build(cls, encoder_name: str, contract: Any, labels: tuple[str, ...], label_source: str, *,
              dropout: float = 0.1, checkpoint: str | None = None) -> EcgClassifier:
        """A new classifier; ``checkpoint`` starts the encoder from an artifact, a classifier's folder or a
        transformers vision checkpoint (:func:`meit.models.encoders.load_encoder_checkpoint`)."""
        from meit.models.encoders import load_encoder_checkpoint

        encoder = build_encoder(encoder_name, contract)
        if checkpoint:
            load_encoder_checkpoint(encoder, checkpoint)
        return cls(encoder, encoder_name, labels, label_source, dropout)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the encoder artifact, the head and ``classifier.json`` atomically (:mod:`meit.publish`)."""
        with staged_folder(directory, "ECG classifier", also_owned_if=(CLASSIFIER_FILE,)) as tmp:
            fill_encoder_artifact(tmp, self.encoder_name, self.encoder, self.encoder.contract,
                                  getattr(self.encoder, "builder_kwargs", {}), source={"made_by": "meit classify"})
            write_safetensors(tmp / HEAD_FILE, {k: v.detach().cpu().contiguous() for k, v in
                                                self.head.state_dict().items()})
            meta = {"format": FORMAT, "version": VERSION, "labels": list(self.labels),
                    "label_source": self.label_source, "head_dropout": self.dropout_p}
            (tmp / CLASSIFIER_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> EcgClassifier:
        """Read a folder written by :meth:`save_pretrained` (safetensors only; nothing is unpickled)."""
        root = Path(directory).expanduser()
        meta_file = root / CLASSIFIER_FILE
        if not meta_file.is_file():
            raise ModelError(f"{root} is not an ECG classifier (no {CLASSIFIER_FILE}); it should be the final/ folder "
                             "of `meit classify train`")
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ModelError(f"{meta_file}: not readable JSON ({err})") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelError(f"{meta_file}: 'format' must be '{FORMAT}'")
        if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
            raise ModelError(f"{meta_file}: 'version' {meta.get('version')!r} is not one this meit reads "
                             f"(up to {VERSION}); upgrade meit")
        labels = meta.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise ModelError(f"{meta_file}: 'labels' must be a non-empty list of names, got {labels!r}")
        encoder_meta = read_encoder_metadata(root)
        if encoder_meta is None:
            raise ModelError(f"{root}: has {CLASSIFIER_FILE} but no encoder.json")
        model = cls.build(encoder_meta.encoder, encoder_meta.contract, tuple(labels), str(meta.get("label_source")),
                          dropout=float(meta.get("head_dropout", 0.0)), checkpoint=str(root))
        head = read_state_file(root / HEAD_FILE)
        try:
            model.head.load_state_dict(head, strict=True)
        except (RuntimeError, TypeError) as err:
            raise ModelError(f"{root / HEAD_FILE} does not fit {len(labels)} labels on a {model.encoder.out_dim}-wide "
                             f"encoder: {err}") from err
        return model


class ReportModelFindings(nn.Module):
    """A report model's encoder and findings head (:class:`meit.models.model_artifact.FindingsReader`) with the
    classifier's interface, for :func:`meit.classify.scoring.evaluate_classifier`: the findings its encoder reads,
    scored per finding beside the shuffled-ECG control. Evaluation only: it is not saved as a classifier."""

    label_source = "report-findings"  # the head learnt the findings the extractor reads in each report

    def __init__(self, reader: nn.Module) -> None:
        super().__init__()
        self.reader = reader

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.reader.labels)

    @property
    def contract(self) -> Any:
        return self.reader.encoder.contract

    def forward(self, ecg: torch.Tensor) -> torch.Tensor:
        return self.reader(ecg)


def load_classifier(directory: str | Path) -> EcgClassifier | ReportModelFindings:
    """A ``meit classify train`` folder, or the encoder and findings head of a report model's folder
    (``meit train`` with ``model.finding_head``, LLM or encdec)."""
    from meit.models.model_artifact import META_FILE, load_findings_reader

    root = Path(directory).expanduser()
    if (root / META_FILE).is_file() and not (root / CLASSIFIER_FILE).is_file():
        return ReportModelFindings(load_findings_reader(root))
    return EcgClassifier.from_pretrained(root)
