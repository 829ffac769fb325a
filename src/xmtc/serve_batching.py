"""The micro-batcher of :mod:`xmtc.serve` and its request limits.

:class:`ServeLimits` holds the request limits and batching settings of the service. :class:`MicroBatcher`
gathers concurrent ``/predict`` requests for a few milliseconds (an asyncio queue drained by one worker task)
and runs them as one ``predict`` call per distinct ``k``, in a single worker thread, so that inference never
blocks the event loop and the model is never used by two threads at once. :class:`BatchStats` counts its work
(``GET /health``). Nothing here knows about HTTP or FastAPI.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from xmtc.errors import ConfigError

__all__ = ["BatchStats", "MicroBatcher", "ServeLimits"]


@dataclass
class ServeLimits:
    """Request limits of the service.

    Attributes:
        max_texts: texts per ``/predict`` request.
        max_chars: characters per request (sum over its texts; the ``/explain`` text).
        max_k: largest ``k``.
        max_body_bytes: request body size; 0 derives it from ``max_chars`` (8 bytes per character, room for
            JSON escapes, plus 64 KiB).
        batch_wait_ms: how long the micro-batcher gathers requests after the first one.
        max_batch_texts: texts per model call (a request is never split, so one call may hold more).
        max_queue: queued ``/predict`` requests before the service answers 503.
    """

    max_texts: int = 64
    max_chars: int = 100_000
    max_k: int = 100
    max_body_bytes: int = 0
    batch_wait_ms: float = 5.0
    max_batch_texts: int = 256
    max_queue: int = 4096

    def __post_init__(self) -> None:
        for name in ("max_texts", "max_chars", "max_k", "max_batch_texts", "max_queue"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, but is {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ConfigError(f"batch_wait_ms must be >= 0, but is {self.batch_wait_ms}")
        if self.max_body_bytes < 0:
            raise ConfigError(f"max_body_bytes must be >= 0, but is {self.max_body_bytes}")
        if self.max_body_bytes == 0:
            self.max_body_bytes = 8 * self.max_chars + 65536


# ------------------------------------------------------------------------------------------- batching
@dataclass
class _Job:
    texts: list[str]
    k: int
    future: asyncio.Future


@dataclass
class BatchStats:
    """Counters of the micro-batcher (shown by ``GET /health``)."""

    requests: int = 0
    texts: int = 0
    model_calls: int = 0
    largest_call: int = 0
    errors: int = 0
    busy_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "texts": self.texts, "model_calls": self.model_calls,
                "largest_call": self.largest_call, "errors": self.errors,
                "busy_seconds": round(self.busy_seconds, 3)}


class MicroBatcher:
    """Gathers concurrent top-k requests and answers them with one model call per distinct ``k``.

    Args:
        predict: ``predict(texts, k) -> (indices int (n, k), scores float (n, k))``, run in the worker thread.
        wait_ms: gathering window after the first queued request.
        max_batch_texts: stop gathering once this many texts are queued.
        max_queue: queued requests before :meth:`submit` raises :class:`asyncio.QueueFull`.
    """

    def __init__(self, predict: Callable[[list[str], int], tuple[np.ndarray, np.ndarray]],
                 wait_ms: float = 5.0, max_batch_texts: int = 256, max_queue: int = 4096):
        self.predict = predict
        self.wait_s = wait_ms / 1000.0
        self.max_batch_texts = max_batch_texts
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the worker on the running event loop (again, when the loop changed); idempotent."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._worker is not None and not self._worker.done():
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xmtc-model")
        self._loop = loop
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._worker = loop.create_task(self._run(self._queue), name="xmtc-micro-batcher")

    async def stop(self) -> None:
        """Cancel the worker, fail queued requests and release the model thread."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._worker
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(RuntimeError("server shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._worker = self._queue = self._loop = self._executor = None

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the model thread (serialised with the batches) and await its result."""
        self.start()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def submit(self, texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Queue ``texts`` for top-``k``; returns (indices (len(texts), k), scores) once their batch ran.

        Raises:
            asyncio.QueueFull: more than ``max_queue`` requests are waiting.
        """
        self.start()
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(texts, k, future))
        return await future

    async def _run(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await queue.get()]
            n = len(jobs[0].texts)
            deadline = loop.time() + self.wait_s
            while n < self.max_batch_texts:
                while not queue.empty() and n < self.max_batch_texts:
                    jobs.append(queue.get_nowait())
                    n += len(jobs[-1].texts)
                remaining = deadline - loop.time()
                if n >= self.max_batch_texts or remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, 0.001))
            await self._answer(jobs)

    async def _answer(self, jobs: list[_Job]) -> None:
        by_k: dict[int, list[_Job]] = {}
        for job in jobs:
            if not job.future.cancelled():  # the client went away while queued
                by_k.setdefault(job.k, []).append(job)
        for k, group in by_k.items():
            texts = [t for job in group for t in job.texts]
            try:
                indices, scores = await self._call_model(texts, k)
            except Exception as e:  # noqa: BLE001  (one bad request must not fail the others: retry alone)
                if len(group) == 1:
                    self.stats.errors += 1
                    if not group[0].future.done():
                        group[0].future.set_exception(e)
                else:
                    for job in group:
                        await self._answer_one(job)
                continue
            self.stats.requests += len(group)
            row = 0
            for job in group:
                m = len(job.texts)
                if not job.future.done():
                    job.future.set_result((indices[row: row + m], scores[row: row + m]))
                row += m

    async def _answer_one(self, job: _Job) -> None:
        try:
            result = await self._call_model(job.texts, job.k)
        except Exception as e:  # noqa: BLE001
            self.stats.errors += 1
            if not job.future.done():
                job.future.set_exception(e)
            return
        self.stats.requests += 1
        if not job.future.done():
            job.future.set_result(result)

    async def _call_model(self, texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, self.predict, texts, k)
        finally:
            self.stats.busy_seconds += time.perf_counter() - t0
        self.stats.model_calls += 1
        self.stats.texts += len(texts)
        self.stats.largest_call = max(self.stats.largest_call, len(texts))
        return result
