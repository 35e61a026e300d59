"""Serving: ``meit serve`` — an HTTP API and a web page that turn an uploaded ECG into a report.

A layer just above :mod:`meit.quickstart` and below :mod:`meit.bench` (whose ``serve`` benchmark drives
it) and the CLI. Inputs are read by :mod:`meit.records` exactly as ``meit generate`` reads a file,
decoded through :mod:`meit.inference` in micro-batches, read by :mod:`meit.findings`, checked by
:mod:`meit.verify` and, with a retrieval index, matched to similar cases (:mod:`meit.retrieval`).
See docs/serving.md.
"""

from __future__ import annotations

from meit.serve.app import create_app
from meit.serve.engine import ReportEngine, Row
from meit.serve.problems import RequestProblem
from meit.serve.server import build_app, serve
from meit.serve.settings import Batching, Decoding, Limits, ServeSettings, build_settings, is_loopback

__all__ = [
    "Batching",
    "Decoding",
    "Limits",
    "ReportEngine",
    "RequestProblem",
    "Row",
    "ServeSettings",
    "build_app",
    "build_settings",
    "create_app",
    "is_loopback",
    "serve",
]
