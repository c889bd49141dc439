"""A micro-batcher: concurrent requests of one worker share one forward pass.

Requests are queued on the worker's event loop; one compute thread takes
everything queued (up to `max_batch_size`) as a batch, runs `process` on it and
resolves each request's future. While a batch computes, new requests queue
and form the next batch, so a lone request waits for no one (no added
latency at one client) and under load the batch grows with the queue
(continuous batching). `max_wait_ms` > 0 holds a batch that is not full for up
to that long first (more sharing, more latency).

A full queue (`max_queue`) refuses at once with `Overloaded` (the service
answers 503) instead of growing the latency without bound. `threaded=False`
computes on the event loop itself (no thread hand-off); the service keeps the
thread, which formed larger batches in the serving benchmark (torch releases
the GIL inside its kernels, so HTTP parsing overlaps the forward pass).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


class Overloaded(RuntimeError):
    """The batcher's queue is full: the request is refused, not queued."""


class MicroBatcher(Generic[Job, Result]):
    def __init__(
        self,
        process: Callable[[list[Job]], Sequence[Result]],
        max_batch_size: int = 64,
        max_queue: int = 1024,
        max_wait_ms: float = 0.0,
        name: str = "mtrec-batch",
        threaded: bool = True,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_wait_ms >= 0")
        self.process = process
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.max_wait_ms = max_wait_ms
        self._queue: collections.deque[tuple[Job, asyncio.Future]] = collections.deque()
        self._executor = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name) if threaded else None
        )
        self._draining = False
        # Counters for tests and the benchmark: batches run and jobs in them.
        self.batches = 0
        self.jobs = 0
        self.largest_batch = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, job: Job) -> Result:
        """The result of `process` for this job (its exception, if it raised one)."""
        if len(self._queue) >= self.max_queue:
            raise Overloaded(f"{len(self._queue)} requests queued; try again later")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((job, future))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.max_wait_ms and len(self._queue) < self.max_batch_size:
                    await asyncio.sleep(self.max_wait_ms / 1000)
                batch = []
                while self._queue and len(batch) < self.max_batch_size:
                    job, future = self._queue.popleft()
                    if not future.done():  # a client that went away is not computed
                        batch.append((job, future))
                if not batch:
                    continue
                self.batches += 1
                self.jobs += len(batch)
                self.largest_batch = max(self.largest_batch, len(batch))
                try:
                    jobs = [job for job, _ in batch]
                    if self._executor is None:  # on the event loop: no thread hand-off
                        results = self.process(jobs)
                    else:
                        results = await loop.run_in_executor(self._executor, self.process, jobs)
                    if len(results) != len(batch):
                        raise RuntimeError(f"{len(results)} results for {len(batch)} jobs")
                except Exception as error:  # the whole batch failed: each request says so
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                if self._executor is None:
                    await asyncio.sleep(0)  # let the loop read and answer before the next batch
        finally:
            self._draining = False

    def stats(self) -> dict[str, Any]:
        return {
            "worker": os.getpid(),
            "batches": self.batches,
            "jobs": self.jobs,
            "mean_batch": self.jobs / self.batches if self.batches else 0.0,
            "largest_batch": self.largest_batch,
        }

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
