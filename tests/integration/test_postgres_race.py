"""Two server processes, one database: racing commits of the same version, one wins.

Each racer is a real OS process with its own `PostgresStore` (its own pool). Before
every round both wait on a barrier, then commit a different move of the same player at
the same version of the same game. The database (row lock + version check in
`gamesocket.append_event`) must apply exactly one and report the other as stale.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from multiprocessing.synchronize import Barrier
from typing import Any

from games import TicTacToeState
from socket_server.store import Actor, EventRecord, GameRecord, StaleVersion
from socket_server.store.postgres import PostgresStore
from tests.integration.test_store_contract import next_version
from tests.pgutil import migrated_database

ROUNDS = 20
ALICE = Actor(user_id=str(uuid.uuid4()))
BOB = Actor(user_id=str(uuid.uuid4()))


async def race(
    url: str, barrier: Barrier, changes: list[tuple[GameRecord, EventRecord]], actor: Actor
) -> list[str]:
    store = PostgresStore(url, max_connections=1)
    await store.open()
    outcomes = []
    try:
        for game, event in changes:
            barrier.wait(timeout=60)  # both processes hold an open connection here
            try:
                await store.commit_change(game, event, actor)
                outcomes.append("applied")
            except StaleVersion:
                outcomes.append("stale")
    finally:
        await store.close()
    return outcomes


def racer(url: str, barrier: Barrier, changes: Any, actor: Actor, results: Any, name: str) -> None:
    # A spawned process imports this module afresh (new ALICE): the actor comes as an argument.
    try:
        results.put((name, asyncio.run(race(url, barrier, changes, actor))))
    except Exception as error:
        barrier.abort()  # the other racer must not wait for this one
        results.put((name, repr(error)))


async def test_two_processes_racing_one_version_apply_exactly_one() -> None:
    async with migrated_database() as url:
        store = PostgresStore(url)
        await store.open()
        try:
            games = [
                GameRecord(
                    game_id=str(uuid.uuid4()),
                    game_type="tictactoe",
                    status="active",
                    seats={
                        "x": {"kind": "human", "user_id": ALICE.user_id},
                        "o": {"kind": "human", "user_id": BOB.user_id},
                    },
                    state=TicTacToeState.initial().to_json(),
                    version=0,
                    turn="x",
                )
                for _ in range(ROUNDS)
            ]
            for game in games:
                await store.create_game(game, Actor.SERVER)
            # Racer A plays the centre, racer B a corner: the stored move names the winner.
            plans = {
                "A": [next_version(g, 4, request_id="from-A", actor=ALICE) for g in games],
                "B": [next_version(g, 0, request_id="from-B", actor=ALICE) for g in games],
            }
            context = multiprocessing.get_context("spawn")
            barrier = context.Barrier(2)
            results = context.Queue()
            processes = [
                context.Process(target=racer, args=(url, barrier, plan, ALICE, results, name))
                for name, plan in plans.items()
            ]
            for process in processes:
                process.start()
            outcomes = dict(
                await asyncio.to_thread(lambda: [results.get(timeout=120) for _ in processes])
            )
            for process in processes:
                process.join(timeout=30)
                assert process.exitcode == 0
            assert all(isinstance(o, list) for o in outcomes.values()), outcomes

            wins = {"A": 0, "B": 0}
            for round_, game in enumerate(games):
                pair = sorted((outcomes["A"][round_], outcomes["B"][round_]))
                assert pair == ["applied", "stale"], (round_, pair)
                winner = "A" if outcomes["A"][round_] == "applied" else "B"
                wins[winner] += 1
                stored = await store.get_game(game.game_id, ALICE)
                events = await store.events_after(game.game_id, 0, ALICE)
                assert stored == plans[winner][round_][0]
                assert events == [plans[winner][round_][1]]
            print(f"wins over {ROUNDS} rounds: {wins}")
        finally:
            await store.close()
