"""The micro-batcher the service answers through (mtrec.serving.batching)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from mtrec.serving.batching import MicroBatcher, Overloaded


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.parametrize("threaded", [True, False])
def test_concurrent_jobs_share_batches_and_each_gets_its_own_answer(threaded):
    calls = []

    def process(jobs):
        calls.append(list(jobs))
        time.sleep(0.01)
        return [job * 2 for job in jobs]

    async def main():
        batcher = MicroBatcher(process, max_batch_size=8, threaded=threaded)
        results = await asyncio.gather(*(batcher.submit(n) for n in range(20)))
        return results, batcher

    results, batcher = run(main())
    assert results == [2 * n for n in range(20)]
    assert [len(call) for call in calls] == [8, 8, 4]
    stats = batcher.stats()
    assert stats.pop("worker") == os.getpid()
    assert stats == {"batches": 3, "jobs": 20, "mean_batch": 20 / 3, "largest_batch": 8}


def test_a_lone_job_is_not_held_back():
    async def main():
        batcher = MicroBatcher(lambda jobs: jobs, max_batch_size=64)
        began = time.perf_counter()
        assert await batcher.submit("only") == "only"
        return time.perf_counter() - began

    assert run(main()) < 0.5


def test_a_failing_batch_fails_each_of_its_jobs_and_the_next_batch_runs():
    def process(jobs):
        if "bad" in jobs:
            raise ValueError("boom")
        return jobs

    async def main():
        batcher = MicroBatcher(process, max_batch_size=2)
        first = await asyncio.gather(
            batcher.submit("bad"), batcher.submit("ok"), return_exceptions=True
        )
        return first, await batcher.submit("later")

    first, later = run(main())
    assert all(isinstance(result, ValueError) for result in first)
    assert later == "later"


def test_a_full_queue_refuses_at_once():
    def process(jobs):
        time.sleep(0.05)
        return jobs

    async def main():
        batcher = MicroBatcher(process, max_batch_size=1, max_queue=2)
        return await asyncio.gather(*(batcher.submit(n) for n in range(5)), return_exceptions=True)

    results = run(main())
    assert results[:2] == [0, 1]
    assert all(isinstance(result, Overloaded) for result in results[2:])


def test_a_cancelled_request_is_not_computed():
    seen = []

    def process(jobs):
        seen.extend(jobs)
        time.sleep(0.02)
        return jobs

    async def main():
        batcher = MicroBatcher(process, max_batch_size=1)
        first = asyncio.ensure_future(batcher.submit("first"))
        gone = asyncio.ensure_future(batcher.submit("gone"))
        await asyncio.sleep(0.005)  # "first" is computing, "gone" queued
        gone.cancel()
        return await first

    assert run(main()) == "first"
    assert seen == ["first"]


def test_settings_are_checked():
    with pytest.raises(ValueError):
        MicroBatcher(lambda jobs: jobs, max_batch_size=0)
