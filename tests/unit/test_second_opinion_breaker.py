"""The optional second opinion is not asked while its endpoint hangs (bot/telegram/safety_gate.py):
a bounded number of calls in flight, a pause after failures in a row, then one probe at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.clock import ManualClock
from bot.telegram.safety_gate import SecondOpinionBreaker


def test_calls_in_flight_are_bounded() -> None:
    breaker = SecondOpinionBreaker(ManualClock(datetime(2026, 3, 2, tzinfo=UTC)), in_flight=3)
    assert [breaker.allow() for _ in range(5)] == [True, True, True, False, False]
    breaker.done(answered=True)
    assert breaker.allow()
    assert breaker.skipped == 2


def test_a_hanging_endpoint_is_paused_then_probed_one_call_at_a_time() -> None:
    clock = ManualClock(datetime(2026, 3, 2, tzinfo=UTC))
    breaker = SecondOpinionBreaker(clock, in_flight=10, failures=3, cool_down=timedelta(seconds=30))
    for _ in range(4):
        assert breaker.allow()
    for _ in range(3):
        breaker.done(answered=False)  # timed out
    assert not breaker.allow()  # paused, with a call still in flight
    breaker.done(answered=False)
    clock.advance(seconds=29)
    assert not breaker.allow()
    clock.advance(seconds=2)
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # one at a time while paused
    breaker.done(answered=False)
    assert not breaker.allow()  # failed: paused again
    clock.advance(seconds=31)
    assert breaker.allow()
    breaker.done(answered=True)  # the endpoint answers again: back to normal
    assert all(breaker.allow() for _ in range(10))
