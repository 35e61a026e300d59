"""The ASGI app: ``/v1`` JSON API (report, ecg, model, health, examples) and the single-page web UI.

Handlers stay thin: bodies are read under the size cap (:func:`read_body`), turned into an ECG by
:mod:`meit.serve.inputs` inside a per-request temporary folder, decoded through the micro-batcher and
annotated with findings, verification verdicts and similar cases. Every refusal is a
:class:`~meit.serve.problems.RequestProblem` rendered as ``{"error": {field, message, expected, status}}``.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import meit
from meit.findings import extract_findings
from meit.leads import CANONICAL_LEADS
from meit.measure import measure_ecg
from meit.serve.batcher import MicroBatcher
from meit.serve.card import describe_model
from meit.serve.engine import ReportEngine, Row
from meit.serve.examples import example_list, load_example
from meit.serve.inputs import EcgInput, read_form, read_json
from meit.serve.multipart import parse_form
from meit.serve.problems import RequestProblem
from meit.serve.settings import ServeSettings
from meit.serve.similar import SimilarCases
from meit.verify import verify_report

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
UPLOAD_PREFIX = "meit-serve-"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``max_bytes`` (declared or streamed)."""
    expected = f"a request body of at most {max_bytes} bytes (--max-upload-mb)"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestProblem("body", f"{int(declared)} bytes", expected, 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestProblem("body", f"more than {max_bytes} bytes", expected, 413)
        chunks.append(chunk)
    return b"".join(chunks)


class ServeState:
    """What the handlers share: settings, the engine, the batcher, the optional similar-case index."""

    def __init__(self, engine: ReportEngine, settings: ServeSettings, similar: SimilarCases | None) -> None:
        self.engine = engine
        self.settings = settings
        self.similar = similar
        self.batcher = MicroBatcher(engine.generate, settings.batching)
        self.started = time.time()

    def parse(self, body: bytes, content_type: str) -> EcgInput:
        """Body → ECG; any file lives only in a temporary folder removed before this returns."""
        kind = content_type.split(";")[0].strip().lower()
        limits = self.settings.limits
        if kind == "application/json":
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError) as err:
                raise RequestProblem("body", f"not valid JSON ({err})", 'a JSON object {"fs", "leads", "signal"}',
                                     400) from None
            reader = functools.partial(read_json, payload, limits)
        elif kind == "multipart/form-data":
            reader = functools.partial(read_form, parse_form(body, content_type), limits)
        else:
            raise RequestProblem("Content-Type", f"{kind or 'none'}",
                                 "application/json or multipart/form-data", 415)
        with tempfile.TemporaryDirectory(prefix=UPLOAD_PREFIX, dir=self.settings.upload_dir) as tmp:
            return reader(Path(tmp))

    def health(self) -> dict[str, Any]:
        s = self.settings
        return {"status": "ok", "meit_version": meit.__version__, "checkpoint": self.engine.checkpoint.name,
                "uptime_s": round(time.time() - self.started, 1), "auth": s.token is not None,
                "limits": s.limits.model_dump(), "batching": s.batching.model_dump(),
                "decoding": self.engine.settings.as_dict(), "retrieval": self.similar is not None,
                "verification": s.verify, "batches": self.batcher.batches, "rows": self.batcher.rows,
                "contract": self.engine.contract.to_dict()}


def _auth(settings: ServeSettings):
    """A dependency that requires ``Authorization: Bearer TOKEN`` when the server has a token."""
    expected = None if settings.token is None else f"Bearer {settings.token}".encode()

    async def check(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise RequestProblem("Authorization", "missing or wrong token", "'Authorization: Bearer TOKEN'", 401)

    return check


async def _report(state: ServeState, request: Request) -> dict[str, Any]:
    settings = state.settings
    arrived = time.perf_counter()
    body = await read_body(request, settings.limits.max_upload_bytes)
    ecg = await run_in_threadpool(state.parse, body, request.headers.get("content-type", ""))
    tensor = await run_in_threadpool(state.engine.prepare, ecg.signal, ecg.fs)
    prepared = time.perf_counter()
    rows = [Row(tensor, state.engine.default_instruction)]
    if ecg.question:
        rows.append(Row(tensor, ecg.question))
    # the waveform is measured and the similar cases found while the report is generated
    measuring = asyncio.ensure_future(run_in_threadpool(measure_ecg, ecg.signal, ecg.fs)) if settings.verify \
        else None
    searching = asyncio.ensure_future(run_in_threadpool(state.similar.query, ecg.signal, ecg.fs, settings.similar_k)) \
        if state.similar is not None else None
    try:
        texts, timing = await state.batcher.submit(rows)
    except BaseException:
        for task in (measuring, searching):
            if task is not None:
                task.cancel()
        raise
    report = texts[0]
    out: dict[str, Any] = {
        "report": report,
        "findings": sorted(extract_findings(report)),
        "answer": None if not ecg.question else {"question": ecg.question, "text": texts[1]},
        "input": {"kind": ecg.kind, "fs": ecg.fs, "seconds": round(ecg.seconds, 3), "repairs": ecg.repairs},
        "decoding": {**state.engine.settings.as_dict(), "instruction": state.engine.default_instruction},
    }
    verified = time.perf_counter()
    if measuring is not None:
        try:
            result = verify_report(report, await measuring)
            out["verification"] = result.to_json(with_measurements=False)
        except Exception as err:  # a signal the measurements cannot read: no verdicts, say why
            log.warning("verification failed: %s", err)
            out["verification"] = {"error": f"{type(err).__name__}: {err}"}
    verified_ms = _ms(time.perf_counter() - verified)
    if searching is not None:
        out["similar"] = await searching
    out["timing"] = {"queue_ms": round(timing.queue_ms, 1), "preprocess_ms": _ms(prepared - arrived),
                     "generate_ms": round(timing.generate_ms, 1), "verify_ms": verified_ms,
                     "total_ms": _ms(time.perf_counter() - arrived), "batch_rows": timing.batch_rows,
                     "batch_requests": timing.batch_requests}
    return out


async def _ecg(state: ServeState, request: Request) -> dict[str, Any]:
    body = await read_body(request, state.settings.limits.max_upload_bytes)
    ecg = await run_in_threadpool(state.parse, body, request.headers.get("content-type", ""))
    return {"kind": ecg.kind, "fs": ecg.fs, "seconds": round(ecg.seconds, 3), "leads": list(CANONICAL_LEADS),
            "repairs": ecg.repairs, "signal": ecg.signal.round(4).tolist()}


def create_app(engine: ReportEngine, settings: ServeSettings, similar: SimilarCases | None = None) -> FastAPI:
    """The app for one loaded model. Use it with uvicorn, or in tests with ``fastapi.testclient.TestClient``."""
    state = ServeState(engine, settings, similar)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await state.batcher.close()

    app = FastAPI(title="meit serve", version=meit.__version__, lifespan=lifespan,
                  description="ECG → clinical report. Research only; not a medical device.")
    app.state.serve = state

    @app.exception_handler(RequestProblem)
    async def _problem(_: Request, err: RequestProblem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.to_json(), status_code=err.status, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse({"error": {"field": None, "message": f"internal error: {type(err).__name__}",
                                       "expected": None, "status": 500}}, status_code=500)

    api = APIRouter(prefix="/v1", dependencies=[Depends(_auth(settings))])

    @api.get("/health")
    async def health() -> dict[str, Any]:
        return state.health()

    @api.get("/model")
    async def model() -> dict[str, Any]:
        described = await run_in_threadpool(describe_model, engine.checkpoint)
        return {**described, "serving": {"decoding": engine.settings.as_dict(),
                                         "instruction": engine.default_instruction,
                                         "retrieval": None if similar is None else similar.describe()}}

    @api.get("/examples")
    async def examples() -> dict[str, Any]:
        return {"examples": [{k: e[k] for k in ("name", "title", "reference")} for e in example_list()]}

    @api.get("/examples/{name}")
    async def example(name: str) -> dict[str, Any]:
        found = await run_in_threadpool(load_example, name)
        if found is None:
            names = ", ".join(e["name"] for e in example_list())
            raise RequestProblem("name", f"no example {name!r}", f"one of {names}", 404)
        return found

    @api.post("/ecg")
    async def ecg(request: Request) -> dict[str, Any]:
        return await _ecg(state, request)

    @api.post("/report")
    async def report(request: Request) -> dict[str, Any]:
        return await _report(state, request)

    app.include_router(api)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    return app
