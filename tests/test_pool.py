"""The PostgreSQL pool's turns: first come, first served, with no overtaking, and a caller
that gives up while waiting neither loses a turn for everyone nor keeps one.

The pool itself runs under every PostgreSQL test (and its outage behaviour in
``test_crashes.py``); this checks the queue discipline directly, on a real event loop.
"""

from __future__ import annotations

import asyncio

from overplane.storage.pool import Turns


def test_turns_are_served_in_arrival_order_and_newcomers_wait_their_turn() -> None:
    async def scenario() -> list[str]:
        turns = Turns(1)
        served: list[str] = []
        await turns.take()  # held by "first"

        async def caller(name: str) -> None:
            await turns.take()
            served.append(name)
            await asyncio.sleep(0)
            turns.give()

        waiting = [asyncio.create_task(caller(f"waiter-{i}")) for i in range(5)]
        await asyncio.sleep(0)  # all five are queued now
        turns.give()  # "first" is done: the turn goes to waiter-0, not to a newcomer
        newcomer = asyncio.create_task(caller("newcomer"))
        await asyncio.gather(*waiting, newcomer)
        return served

    assert asyncio.run(scenario()) == [*(f"waiter-{i}" for i in range(5)), "newcomer"]


def test_a_caller_cancelled_while_waiting_leaves_the_turns_intact() -> None:
    async def scenario() -> tuple[bool, bool]:
        turns = Turns(1)
        await turns.take()
        quitter = asyncio.create_task(turns.take())
        patient = asyncio.create_task(turns.take())
        await asyncio.sleep(0)
        quitter.cancel()
        turns.give()  # must reach the patient caller, not vanish with the quitter
        await asyncio.wait_for(patient, 1)
        turns.give()
        # exactly one turn exists again: taking it succeeds, and then it is busy
        await asyncio.wait_for(turns.take(), 1)
        return quitter.cancelled(), turns.busy()

    assert asyncio.run(scenario()) == (True, True)


def test_a_turn_handed_over_as_its_waiter_is_cancelled_is_passed_on() -> None:
    async def scenario() -> bool:
        turns = Turns(1)
        await turns.take()
        quitter = asyncio.create_task(turns.take())
        patient = asyncio.create_task(turns.take())
        await asyncio.sleep(0)
        turns.give()  # handed to the quitter ...
        quitter.cancel()  # ... who is cancelled before it resumes
        await asyncio.wait_for(patient, 1)
        return quitter.cancelled()

    assert asyncio.run(scenario())
