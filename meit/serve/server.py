"""Start a server: load the artifact (and an index, if any), build the app, hand it to uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from meit.errors import ModelError
from meit.serve.app import create_app
from meit.serve.engine import ReportEngine
from meit.serve.settings import ServeSettings, is_loopback
from meit.serve.similar import SimilarCases, find_index

log = logging.getLogger(__name__)


def build_app(checkpoint: str | Path, settings: ServeSettings, *, index: str | Path | None = None,
              index_model: str | Path | None = None, trust_remote_code: bool = False) -> Any:
    """The app serving ``checkpoint`` (a trained artifact folder) with ``settings``."""
    path = Path(checkpoint).expanduser()
    if not path.is_dir():
        raise ModelError(f"--checkpoint {path}: no such folder (expected a trained artifact, e.g. RUN/final)")
    engine = ReportEngine.load(path, settings.decoding, trust_remote_code=trust_remote_code)
    index_dir = find_index(path, index)
    similar = SimilarCases.load(index_dir, index_model) if index_dir is not None else None
    if similar is not None:
        log.info("similar cases from %s (%d indexed ECGs)", index_dir, len(similar.index))
    return create_app(engine, settings, similar)


def serve(app: Any, settings: ServeSettings) -> None:
    """Run ``app`` with uvicorn until interrupted."""
    import uvicorn

    if not is_loopback(settings.host):
        log.warning("listening on %s: reachable from other machines; %s", settings.host,
                    "every /v1 call needs the token" if settings.token else "NO TOKEN (--insecure-no-token)")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False,
                limit_concurrency=4 * settings.batching.max_queue, timeout_keep_alive=5)
