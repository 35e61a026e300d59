"""Micro-batching: requests that arrive within a short window are decoded as one batch.

Generation on CPU (and more so on a GPU) costs little more for 8 rows than for 1, so concurrent callers
gain throughput when their rows share a forward pass. The first waiting request opens a window of
``window_ms``; everything queued before it closes (up to ``max_batch`` rows) joins the batch. Batches run
one at a time on a single worker thread, so the model is never called concurrently. With batching off
each request is decoded alone, in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from meit.serve.problems import RequestProblem
from meit.serve.settings import Batching


@dataclass
class BatchTiming:
    """When one request's rows were decoded: queue wait, batch duration, batch size (rows and requests)."""

    queue_ms: float
    generate_ms: float
    batch_rows: int
    batch_requests: int


@dataclass
class _Pending:
    rows: list[Any]
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Collects rows of concurrent requests and runs ``decode(rows) -> texts`` on them in batches."""

    def __init__(self, decode: Callable[[list[Any]], list[str]], settings: Batching) -> None:
        self.decode = decode
        self.settings = settings
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meit-generate")
        self.batches = 0
        self.rows = 0

    def _ensure_worker(self) -> asyncio.Queue[_Pending]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run(self._queue), name="meit-serve-batcher")
        assert self._queue is not None
        return self._queue

    async def submit(self, rows: list[Any]) -> tuple[list[str], BatchTiming]:
        """Decode ``rows`` (kept together in one batch); returns their texts and the batch's timing."""
        queue = self._ensure_worker()
        if queue.qsize() >= self.settings.max_queue:
            raise RequestProblem("body", f"{queue.qsize()} requests are already waiting",
                                 "a retry in a moment (the server is busy)", 503)
        pending = _Pending(rows, asyncio.get_running_loop().create_future())
        await queue.put(pending)
        return await pending.future

    async def _collect(self, queue: asyncio.Queue[_Pending], first: _Pending,
                       carry: list[_Pending]) -> list[_Pending]:
        """The batch opened by ``first``: whatever fits and arrives before the window closes."""
        batch, size = [first], len(first.rows)
        if not self.settings.enabled:
            return batch
        deadline = time.perf_counter() + self.settings.window_ms / 1000
        while size < self.settings.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(queue.get(), remaining)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if size + len(item.rows) > self.settings.max_batch:
                carry.append(item)  # opens the next batch
                break
            batch.append(item)
            size += len(item.rows)
        return batch

    async def _run(self, queue: asyncio.Queue[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        carry: list[_Pending] = []
        while True:
            first = carry.pop(0) if carry else await queue.get()
            batch = await self._collect(queue, first, carry)
            rows = [row for item in batch for row in item.rows]
            start = time.perf_counter()
            try:
                texts = await loop.run_in_executor(self._executor, self.decode, rows)
            except Exception as err:  # every caller of the batch gets the failure
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(err)
                continue
            elapsed = (time.perf_counter() - start) * 1000
            self.batches += 1
            self.rows += len(rows)
            at = 0
            for item in batch:
                timing = BatchTiming(queue_ms=(start - item.queued_at) * 1000, generate_ms=elapsed,
                                     batch_rows=len(rows), batch_requests=len(batch))
                if not item.future.done():  # a caller that went away has a cancelled future
                    item.future.set_result((texts[at:at + len(item.rows)], timing))
                at += len(item.rows)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
            self._worker = None
        self._executor.shutdown(wait=False, cancel_futures=True)
