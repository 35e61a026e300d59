"""A retrieval index of a prepared split: stored ECG and report embeddings, queried by a new ECG.

``build_index`` embeds every row of a split once and writes a folder:

* ``embeddings.safetensors``: ``ecg`` ``[N, D]`` (one per row) and ``report`` ``[U, D]`` (one per
  *distinct* report text: machine statements repeat word for word, and retrieving the same sentence
  ten times would tell the user nothing);
* ``records.jsonl``: per row ``id``, ``report``, ``report_index`` (its row in ``report``) and
  ``findings`` (the clinical extractor's set, used to judge ECG→ECG hits);
* ``index.json``: where the model and the data came from, counts, the encoder contract and the
  sha256 of the model's weight files, so queries embedded by another model are refused instead of
  silently returning nonsense.

Only embeddings are held in memory (rows are embedded batch by batch), and nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from meit import __version__
from meit.errors import DataError, ModelError
from meit.findings import extract_findings
from meit.hashing import file_sha256
from meit.retrieval.evaluate import embed_dataset
from meit.retrieval.metrics import (
    chance_recall_at_k,
    ecg_to_report_relevance,
    recall_at_k,
    same_findings_relevance,
    unique_texts,
)

FORMAT = "meit-retrieval-index"
VERSION = 1
EMBEDDINGS = "embeddings.safetensors"
RECORDS = "records.jsonl"
META = "index.json"
# weight files whose bytes decide the embeddings; the encoder's is required, the heads' checked when present
FINGERPRINTED = ("encoder.safetensors", "heads.safetensors")
# similarity entries scored at once in evaluate(): bounds memory to a few hundred MB on big indexes
_CHUNK_ELEMENTS = 1 << 24

Direction = Literal["report", "ecg"]


# ------------------------------------------------------------------------------------------------
# helpers shared by build, query and the CLI


def model_fingerprint(model_dir: str | Path) -> dict[str, str]:
    """sha256 of the model folder's weight files (``encoder.safetensors`` must exist)."""
    root = Path(model_dir).expanduser()
    if not (root / FINGERPRINTED[0]).is_file():
        raise ModelError(f"{root / FINGERPRINTED[0]} not found: the model folder should be the final/ folder "
                         "of `meit pretrain`")
    return {name: file_sha256(root / name) for name in FINGERPRINTED if (root / name).is_file()}


def embed_signal(model: Any, signal: Any, fs: int) -> torch.Tensor:
    """The embedding ``[D]`` of one raw ECG (12 × T, mV, canonical lead order) sampled at ``fs``."""
    import numpy as np

    transform = model.contract.load_transform(fs)
    ecg = torch.from_numpy(np.ascontiguousarray(transform(np.asarray(signal, dtype=np.float32)), dtype=np.float32))
    return model.embed_ecgs(ecg[None], batch_size=1)[0]


def embed_record(model: Any, path: str | Path, fs: int | None = None) -> torch.Tensor:
    """Read a wfdb record (or ``.npy`` with ``fs``) with prep's own reader and embed it."""
    from meit.evaluation.single import read_ecg_file

    signal, file_fs = read_ecg_file(path, fs)
    return embed_signal(model, signal, file_fs)


def _embed_texts(model: Any, texts: list[str], batch_size: int, progress: bool) -> torch.Tensor:
    parts = []
    starts = range(0, len(texts), batch_size)
    for start in tqdm(starts, disable=not progress, desc="embed reports", unit="batch"):
        parts.append(model.embed_texts(texts[start:start + batch_size], batch_size=batch_size))
    return torch.cat(parts) if parts else torch.zeros(0, model.embed_dim)


# ------------------------------------------------------------------------------------------------
# build


def build_index(model: Any, dataset: Any, out_dir: str | Path, *, model_dir: str | Path, data_path: str | Path,
                split: str, batch_size: int = 64, progress: bool = True) -> Path:
    """Embed every row of ``dataset`` (an EcgTextDataset of ``data_path``/``split``) and write the index folder.

    Written to a temporary sibling folder first and renamed at the end, so an interrupted build never
    leaves a half index that loads.
    """
    from safetensors.torch import save_file

    fingerprint = model_fingerprint(model_dir)
    ids, reports = dataset.ids(), dataset.reports()
    duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)
    if duplicates:
        raise DataError(f"split '{split}' of {data_path} repeats row id(s) {duplicates[:5]}; "
                        "an index needs unique ids to exclude a query from its own results")
    ecg = embed_dataset(model, dataset, batch_size=batch_size, progress=progress)
    distinct, which = unique_texts(reports)
    text = _embed_texts(model, distinct, batch_size, progress)

    final = Path(out_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({"ecg": ecg.float().contiguous(), "report": text.float().contiguous()}, str(tmp / EMBEDDINGS),
              metadata={"format": FORMAT})
    with open(tmp / RECORDS, "w") as handle:
        for row_id, report, position in zip(ids, reports, which, strict=True):
            record = {"id": row_id, "report": report, "report_index": position,
                      "findings": sorted(extract_findings(report))}
            handle.write(json.dumps(record) + "\n")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model_dir": str(Path(model_dir).expanduser().resolve()),
        "data_path": str(Path(data_path).expanduser().resolve()),
        "split": split,
        "rows": len(ids),
        "distinct_reports": len(distinct),
        "embed_dim": int(model.embed_dim),
        "contract": model.contract.to_dict(),
        "model_sha256": fingerprint,
        "meit_version": __version__,
    }
    (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


# ------------------------------------------------------------------------------------------------
# load and query


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
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        root = Path(directory).expanduser()
        if not root.is_dir():
            raise DataError(f"retrieval index not found: {root} (build one with `meit retrieve build`)")
        meta_file, emb_file, rec_file = root / META, root / EMBEDDINGS, root / RECORDS
        for file in (meta_file, emb_file, rec_file):
            if not file.is_file():
                raise DataError(f"{file} is missing: {root} is not a complete retrieval index (rebuild it)")
        try:
            meta = json.loads(meta_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{meta_file} is not valid JSON: {err}") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise DataError(f"{meta_file}: format is {got!r}, expected {FORMAT!r}")
        missing = [k for k in ("model_dir", "data_path", "split", "rows", "embed_dim", "contract", "model_sha256")
                   if k not in meta]
        if missing:
            raise DataError(f"{meta_file} lacks {missing}")
        try:
            tensors = load_file(str(emb_file))
        except (SafetensorError, OSError, ValueError) as err:
            raise DataError(f"{emb_file} is not a readable safetensors file: {err}") from err
        if set(tensors) != {"ecg", "report"}:
            raise DataError(f"{emb_file} holds {sorted(tensors)}, expected ['ecg', 'report']")
        ecg, report = tensors["ecg"].float(), tensors["report"].float()
        dim = int(meta["embed_dim"])
        for name, tensor in (("ecg", ecg), ("report", report)):
            if tensor.ndim != 2 or tensor.shape[1] != dim:
                raise DataError(f"{emb_file}: '{name}' has shape {list(tensor.shape)}, expected [*, {dim}]")
        records = []
        try:
            with open(rec_file) as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    if not isinstance(row, dict) or not {"id", "report", "report_index"} <= set(row):
                        raise DataError(f"{rec_file} line {number}: expected id, report, report_index; "
                                        f"got {line[:80]!r}")
                    records.append(row)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{rec_file} line {number}: not valid JSON ({err})") from err
        if not (len(records) == ecg.shape[0] == int(meta["rows"])):
            raise DataError(f"{root}: {rec_file.name} has {len(records)} rows, {emb_file.name} has {ecg.shape[0]} "
                            f"ECG embeddings and {meta_file.name} says {meta['rows']}; rebuild the index")
        bad = [r["id"] for r in records if not 0 <= int(r["report_index"]) < report.shape[0]]
        if bad:
            raise DataError(f"{rec_file}: report_index out of range [0, {report.shape[0]}) for id(s) {bad[:5]}")
        return cls(root, meta, ecg, report, records)

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
        self._check_compatible(model)
        return model

    def _check_compatible(self, model: Any) -> None:
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
        """Recall@k of queries (an EcgTextDataset, usually another split) against this index, beside chance.

        ECG→report: a hit is the query's exact report text among the index's distinct reports (queries
        whose report the index lacks cannot hit and are not counted). ECG→ECG: a hit is an indexed case
        whose report states the same non-empty finding set. A query whose id is in the index is removed
        from its own candidates (same split on both sides), and its chance level counts one candidate less;
        pass ``exclude_self=False`` when the queries come from another dataset whose ids merely collide.
        """
        self._check_compatible(model)
        ks = sorted({int(k) for k in ks})
        if not ks or ks[0] < 1:
            raise ValueError(f"ks must be positive integers, got {ks}")
        q_emb = embed_dataset(model, queries, batch_size=batch_size, progress=progress).float()
        return self.evaluate_embeddings(q_emb, queries.ids(), queries.reports(), ks, exclude_self=exclude_self)

    def evaluate_embeddings(self, q_emb: torch.Tensor, q_ids: Sequence[str], q_reports: Sequence[str],
                            ks: Sequence[int], *, exclude_self: bool = True) -> dict[str, Any]:
        """:meth:`evaluate` on query embeddings already computed (exposed for tests and custom encoders)."""
        ks = sorted({int(k) for k in ks})
        q_findings = [extract_findings(r) for r in q_reports]
        # same-findings relevance on the distinct finding sets only, then expanded by index (no Q × N Python loop)
        q_sets, q_which = unique_texts(["\x1f".join(sorted(f)) for f in q_findings])
        c_sets, c_which = unique_texts(["\x1f".join(sorted(f)) for f in self.findings])
        set_relevance = same_findings_relevance([_as_set(s) for s in q_sets], [_as_set(s) for s in c_sets])
        q_set_idx, c_set_idx = torch.tensor(q_which, dtype=torch.long), torch.tensor(c_which, dtype=torch.long)
        self_col = torch.tensor([self.position.get(str(i), -1) if exclude_self else -1 for i in q_ids],
                                dtype=torch.long)

        report_acc, ecg_acc = _Accumulator(ks), _Accumulator(ks)
        n = len(self)
        chunk = max(1, _CHUNK_ELEMENTS // max(n, self.report.shape[0], 1))
        for start in range(0, len(q_reports), chunk):
            stop = min(start + chunk, len(q_reports))
            emb = q_emb[start:stop]
            relevant = ecg_to_report_relevance(q_reports[start:stop], self.distinct)
            report_acc.add(emb @ self.report.t(), relevant, None)
            sim = emb @ self.ecg.t()
            relevant = set_relevance[q_set_idx[start:stop]][:, c_set_idx] if n else torch.zeros(stop - start, 0,
                                                                                               dtype=torch.bool)
            ecg_acc.add(sim, relevant, self_col[start:stop])
        return {
            "index": str(self.root),
            "queries": len(q_reports),
            "ecg_to_report": {"candidates": self.report.shape[0], **report_acc.result()},
            "ecg_to_ecg": {"candidates": n, "self_excluded": int((self_col >= 0).sum()), **ecg_acc.result()},
        }


def _as_set(key: str) -> frozenset[str]:
    return frozenset(key.split("\x1f")) if key else frozenset()


class _Accumulator:
    """Recall@k and chance over query chunks, each weighted by its number of scorable queries."""

    def __init__(self, ks: Sequence[int]) -> None:
        self.ks = list(ks)
        self.counted = 0
        self.recall = dict.fromkeys(self.ks, 0.0)
        self.chance = dict.fromkeys(self.ks, 0.0)

    def _add(self, similarity: torch.Tensor, relevant: torch.Tensor, chance_relevant: torch.Tensor) -> None:
        counted = int(relevant.any(1).sum())
        if counted == 0:
            return
        recall = recall_at_k(similarity, relevant, self.ks)
        chance = chance_recall_at_k(chance_relevant, self.ks)
        for k in self.ks:
            self.recall[k] += recall[k] * counted
            self.chance[k] += chance[k] * counted
        self.counted += counted

    def add(self, similarity: torch.Tensor, relevant: torch.Tensor, self_col: torch.Tensor | None) -> None:
        if self_col is None or not bool((self_col >= 0).any()):
            self._add(similarity, relevant, relevant)
            return
        has_self = self_col >= 0
        # queries that are themselves in the index: drop their own column (score and relevance) entirely
        sim, rel = similarity[has_self].clone(), relevant[has_self].clone()
        keep = torch.ones_like(rel)
        keep[torch.arange(len(rel)), self_col[has_self]] = False
        sim[~keep] = -math.inf
        rel[~keep] = False
        others = rel[keep].reshape(len(rel), -1)  # the N - 1 real candidates, for chance
        self._add(sim, rel, others)
        if bool((~has_self).any()):
            self._add(similarity[~has_self], relevant[~has_self], relevant[~has_self])

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"queries_scored": self.counted}
        for k in self.ks:
            out[f"recall@{k}"] = self.recall[k] / self.counted if self.counted else float("nan")
            out[f"chance@{k}"] = self.chance[k] / self.counted if self.counted else float("nan")
        return out
