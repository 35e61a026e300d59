"""A retrieval index in memory: stored ECG and report embeddings of a prepared split, queried by a new ECG.

The folder layout and its reader/writer are in :mod:`meit.retrieval.index_files`, building in
:mod:`meit.retrieval.index_build`, recall@k against an index in :mod:`meit.retrieval.index_recall`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from meit.errors import ModelError
from meit.retrieval import index_recall
from meit.retrieval.index_files import META, model_fingerprint, read_index_files

Direction = Literal["report", "ecg"]


@dataclass(frozen=True)
class Hit:
    """One retrieved item: a distinct report (``to="report"``) or an indexed case (``to="ecg"``)."""

    rank: int
    score: float
    report: str
    id: str | None = None  # the case's row id (ECG→ECG)
    rows: int | None = None  # how many indexed rows carry this exact report (ECG→report)
    findings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["findings"] = list(self.findings)
        return {k: v for k, v in out.items() if v is not None}


class RetrievalIndex:
    """An index folder in memory: embeddings plus per-row id, report and findings."""

    def __init__(self, root: Path, meta: dict[str, Any], ecg: torch.Tensor, report: torch.Tensor,
                 records: list[dict[str, Any]]) -> None:
        self.root = root
        self.meta = meta
        self.ecg = ecg
        self.report = report
        self.ids = [str(r["id"]) for r in records]
        self.reports = [str(r["report"]) for r in records]
        self.report_index = [int(r["report_index"]) for r in records]
        self.findings = [frozenset(r.get("findings", ())) for r in records]
        self.position = {row_id: i for i, row_id in enumerate(self.ids)}
        self.distinct = [""] * report.shape[0]
        self.rows_per_report = [0] * report.shape[0]
        self._distinct_findings: list[frozenset[str]] = [frozenset()] * report.shape[0]
        for text, position, found in zip(self.reports, self.report_index, self.findings, strict=True):
            self.distinct[position] = text
            self.rows_per_report[position] += 1
            self._distinct_findings[position] = found

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def model_dir(self) -> str:
        return str(self.meta["model_dir"])

    @property
    def data_path(self) -> str:
        return str(self.meta["data_path"])

    @property
    def split(self) -> str:
        return str(self.meta["split"])

    @classmethod
    def load(cls, directory: str | Path) -> RetrievalIndex:
        """Read an index folder; every missing or inconsistent file is named in the error."""
        files = read_index_files(directory)
        return cls(Path(directory).expanduser(), files.meta, files.ecg, files.report, files.records)

    # -------------------------------------------------------------------------------------------
    # the model that embeds queries must be the one that built the index

    def check_model(self, model_dir: str | Path) -> None:
        """Refuse a model folder whose weight files differ from the ones the index was built with."""
        theirs = model_fingerprint(model_dir)
        ours = self.meta["model_sha256"]
        differing = [name for name in ours if theirs.get(name) != ours[name]]
        if differing:
            raise ModelError(
                f"{Path(model_dir)} is not the model that built the index {self.root} "
                f"({', '.join(differing)} differ from the sha256 in {self.root / META}; the index was built with "
                f"{self.model_dir}). Rebuild the index with this model, or pass the original with --model."
            )

    def load_model(self, model_dir: str | Path | None = None) -> Any:
        """The :class:`~meit.pretrain.model.EcgTextModel` that built this index (checked by hash)."""
        from meit.pretrain.model import EcgTextModel

        path = Path(model_dir or self.model_dir).expanduser()
        if not path.is_dir():
            raise ModelError(f"model folder {path} (from {self.root / META}) not found; pass it with --model")
        self.check_model(path)
        model = EcgTextModel.from_pretrained(path)
        self.check_compatible(model)
        return model

    def check_compatible(self, model: Any) -> None:
        """Refuse a model whose embedding size or input contract differs from the index's."""
        if int(model.embed_dim) != int(self.meta["embed_dim"]):
            raise ModelError(f"model embeds into {model.embed_dim} dimensions, the index {self.root} into "
                             f"{self.meta['embed_dim']}: it was built by another model")
        # compared as contracts: an index written before the filtering fields existed lacks them (= defaults)
        if type(model.contract).from_dict(self.meta["contract"]) != model.contract:
            raise ModelError(f"model contract {model.contract.describe()} differs from the index's "
                             f"{self.meta['contract']} ({self.root / META}): it was built by another model")

    # -------------------------------------------------------------------------------------------

    def query_ecg(self, embedding: torch.Tensor, k: int = 5, to: Direction = "report",
                  exclude_id: str | None = None) -> list[Hit]:
        """The ``k`` nearest distinct reports (``to="report"``) or indexed cases (``to="ecg"``), best first.

        ``exclude_id`` drops that row from ECG→ECG results (a case is trivially its own nearest neighbour).
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        query = embedding.float().reshape(-1)
        if query.shape[0] != self.ecg.shape[1]:
            raise ModelError(f"query embedding has {query.shape[0]} dimensions, the index {self.root} "
                             f"{self.ecg.shape[1]}")
        if to == "report":
            scores = self.report @ query
            values, order = scores.topk(min(k, scores.shape[0]))
            return [Hit(rank=r + 1, score=float(v), report=self.distinct[i], rows=self.rows_per_report[i],
                        findings=tuple(sorted(self._distinct_findings[i])))
                    for r, (v, i) in enumerate(zip(values.tolist(), order.tolist(), strict=True))]
        if to == "ecg":
            scores = self.ecg @ query
            available = scores.shape[0]
            if exclude_id is not None and exclude_id in self.position:
                scores[self.position[exclude_id]] = -math.inf
                available -= 1
            values, order = scores.topk(min(k, available)) if available > 0 else (scores[:0], scores[:0].long())
            return [Hit(rank=r + 1, score=float(v), report=self.reports[i], id=self.ids[i],
                        findings=tuple(sorted(self.findings[i])))
                    for r, (v, i) in enumerate(zip(values.tolist(), order.tolist(), strict=True))]
        raise ValueError(f"to must be 'report' or 'ecg', got {to!r}")

    def embedding_of(self, row_id: str) -> torch.Tensor | None:
        """The stored ECG embedding of an indexed row (None when the id is not in the index)."""
        position = self.position.get(row_id)
        return None if position is None else self.ecg[position]

    # -------------------------------------------------------------------------------------------

    def evaluate(self, model: Any, queries: Any, ks: Sequence[int] = (1, 5, 10), *, batch_size: int = 64,
                 progress: bool = False, exclude_self: bool = True) -> dict[str, Any]:
        """Recall@k of ``queries`` against this index (see :func:`meit.retrieval.index_recall.evaluate_queries`)."""
        return index_recall.evaluate_queries(self, model, queries, ks, batch_size=batch_size, progress=progress,
                                exclude_self=exclude_self)

    def evaluate_embeddings(self, q_emb: torch.Tensor, q_ids: Sequence[str], q_reports: Sequence[str],
                            ks: Sequence[int], *, exclude_self: bool = True) -> dict[str, Any]:
        """Recall@k of query embeddings already computed (exposed for tests and custom encoders)."""
        return index_recall.evaluate_embeddings(self, q_emb, q_ids, q_reports, ks, exclude_self=exclude_self)
