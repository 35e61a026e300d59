"""Similar cases for the page: a retrieval index (``meit retrieve build``) queried with the uploaded ECG.

The index is optional: ``meit serve --index DIR``, or a ``retrieval_index/`` folder inside the artifact.
The index's own ECG–text model embeds the query (checked against the index by hash, as ``meit retrieve``
does), so the neighbours come from the space the index was built in, not from the report model.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from meit.retrieval.index import RetrievalIndex
from meit.retrieval.index_build import embed_signal
from meit.retrieval.index_files import META

#: the folder name under which an artifact may carry its own index
ARTIFACT_INDEX_DIR = "retrieval_index"


def find_index(checkpoint: Path, explicit: str | Path | None) -> Path | None:
    """The index to serve: the explicit folder, else the artifact's ``retrieval_index/`` when it has one."""
    if explicit is not None:
        return Path(explicit).expanduser()
    inside = checkpoint / ARTIFACT_INDEX_DIR
    return inside if (inside / META).is_file() else None


class SimilarCases:
    """An index and the model that built it; :meth:`query` returns the nearest indexed cases."""

    def __init__(self, index: RetrievalIndex, model: Any) -> None:
        self.index = index
        self.model = model.eval()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: str | Path, model_dir: str | Path | None = None) -> SimilarCases:
        index = RetrievalIndex.load(directory)
        return cls(index, index.load_model(model_dir))

    def describe(self) -> dict[str, Any]:
        return {"rows": len(self.index), "split": self.index.split, "data_path": self.index.data_path}

    def query(self, signal: np.ndarray, fs: int, k: int) -> list[dict[str, Any]]:
        """The ``k`` indexed cases nearest to this ECG (ECG→ECG), best first, with their reports and findings."""
        with self._lock:
            embedding = embed_signal(self.model, signal, fs)
        return [hit.to_dict() for hit in self.index.query_ecg(embedding, k=k, to="ecg")]
