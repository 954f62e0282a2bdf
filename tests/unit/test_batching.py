"""`Batcher`: the calls that arrive together are handled together, each with its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from socket_server.store.batching import Batcher


class Doubler:
    """Doubles each number, refuses negative ones (that item alone), and records the
    batches it was given; `gate`, while clear, holds every batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await self.gate.wait()
        return [ValueError(f"negative: {i}") if i < 0 else 2 * i for i in items]


async def test_a_lone_call_is_handled_at_once() -> None:
    handler = Doubler()
    batcher = Batcher(handler)
    assert await asyncio.wait_for(batcher.submit(3), timeout=1) == 6
    assert handler.batches == [[3]]


async def test_calls_made_together_go_in_one_batch_each_with_its_outcome() -> None:
    handler = Doubler()
    batcher = Batcher(handler, concurrency=2)
    outcomes = await asyncio.gather(
        *(batcher.submit(i) for i in (1, -2, 3)), return_exceptions=True
    )
    assert outcomes[0] == 2 and outcomes[2] == 6
    assert isinstance(outcomes[1], ValueError)
    assert handler.batches == [[1, -2, 3]]


async def test_calls_made_while_a_batch_runs_wait_and_go_in_the_next() -> None:
    handler = Doubler()
    batcher = Batcher(handler, max_size=2)
    handler.gate.clear()
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert handler.batches == [[1]]
    later = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert not first.done()  # nobody hears back before their batch is handled
    handler.gate.set()
    assert await asyncio.gather(first, *later) == [2, 4, 6, 8]
    assert handler.batches == [[1], [2, 3], [4]]  # at most max_size at a time


async def test_at_most_concurrency_batches_run_at_once() -> None:
    handler = Doubler()
    batcher = Batcher(handler, concurrency=2)
    handler.gate.clear()
    calls = []
    for i in range(4):  # one at a time: each would start a batch of its own if it could
        calls.append(asyncio.ensure_future(batcher.submit(i)))
        await asyncio.sleep(0.01)
    assert handler.batches == [[0], [1]]
    handler.gate.set()
    assert await asyncio.gather(*calls) == [0, 2, 4, 6]
    assert handler.batches == [[0], [1], [2, 3]]


async def test_a_batch_that_fails_as_a_whole_fails_every_call_in_it() -> None:
    async def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise ConnectionError("the database went away")

    batcher: Batcher[int, int] = Batcher(broken)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    # ...and the batcher goes on with the next calls.
    with pytest.raises(ConnectionError):
        await batcher.submit(4)


async def test_a_wrong_number_of_outcomes_fails_the_batch() -> None:
    async def short(items: Sequence[int]) -> list[int | BaseException]:
        return list(items)[1:]

    batcher: Batcher[int, int] = Batcher(short)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(2)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)


async def test_a_cancelled_caller_leaves_the_others_their_outcome() -> None:
    handler = Doubler()
    batcher = Batcher(handler)
    handler.gate.clear()
    gone, kept = (asyncio.ensure_future(batcher.submit(i)) for i in (1, 2))
    await asyncio.sleep(0.01)
    gone.cancel()
    handler.gate.set()
    assert await kept == 4
    assert gone.cancelled()


async def test_a_cancelled_batch_cancels_the_calls_queued_behind_it() -> None:
    handler = Doubler()
    batcher = Batcher(handler)
    handler.gate.clear()
    running = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.01)
    for task in list(batcher._tasks):  # as when the loop closes, mid-batch
        task.cancel()
    await asyncio.sleep(0.01)
    assert running.cancelled() and queued.cancelled()  # nobody waits forever
    handler.gate.set()
    assert await asyncio.wait_for(batcher.submit(3), timeout=1) == 6  # and it goes on


async def test_drain_waits_for_the_batches_under_way() -> None:
    handler = Doubler()
    batcher = Batcher(handler)
    handler.gate.clear()
    call = asyncio.ensure_future(batcher.submit(5))
    await asyncio.sleep(0.01)
    drained = asyncio.ensure_future(batcher.drain())
    await asyncio.sleep(0.01)
    assert not drained.done()
    handler.gate.set()
    await asyncio.wait_for(drained, timeout=1)
    assert call.done() and call.result() == 10


def test_sizes_below_one_are_refused() -> None:
    with pytest.raises(ValueError):
        Batcher(Doubler(), concurrency=0)
    with pytest.raises(ValueError):
        Batcher(Doubler(), max_size=0)
