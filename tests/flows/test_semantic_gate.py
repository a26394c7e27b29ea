"""The semantic layer inside the safety gate, in process on SQLite and PostgreSQL: it reads a
participant this process has never met (added straight to the database, as after a restart); when
it is late, the rules' answer goes out and its later answer still brings the crisis reply and the
page; when it fails, the participant still gets an answer and nobody hangs."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.config import SemanticSettings, Settings
from bot.db.models import Escalation
from bot.safety.levels import Assessment, Level
from bot.safety.semantic import SemanticLayer, SemanticSecondOpinion
from bot.sandbox.botapi import FakeBotAPI
from bot.telegram.safety_gate import SafetyGate
from tests.support.inproc import InProcessBot, add_participant, add_staff

DR, PAT = 900_301, 5_301
UNLISTED = "my brother can have my guitar and my truck, i already signed the title over"
SAVED = "saved this for your care team"


@pytest.fixture
async def quick(bot_settings: Settings, api: FakeBotAPI, clock: ManualClock) -> AsyncIterator[InProcessBot]:
    # A short wait, so that a held-up layer is "late" at once (the timeout is real time by nature).
    settings = dataclasses.replace(bot_settings, semantic=SemanticSettings(enabled=True, wait_ms=50))
    running = await InProcessBot.start(settings, api, clock)
    yield running
    await running.close()


async def _enroll(inbot: InProcessBot) -> None:
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-sem", DR, inbot.clock.now())
        await add_participant(s, "P-sem", dr, PAT, inbot.clock.now())
        await s.commit()


async def _escalations(inbot: InProcessBot) -> list[Escalation]:
    async with inbot.ctx.sessionmaker() as s:
        return list((await s.scalars(select(Escalation))).unique().all())


def _gate(inbot: InProcessBot) -> SafetyGate:
    gates = [m for m in inbot.running.dispatcher.update.outer_middleware if isinstance(m, SafetyGate)]
    assert len(gates) == 1
    return gates[0]


class _Held(SemanticLayer):
    """The real layer, held until the test lets it go (or made to fail)."""

    def __init__(self, layer: SemanticLayer, *, fail: bool = False) -> None:
        super().__init__(layer.model, layer.encoder, layer.rules)
        self.go, self.fail = threading.Event(), fail

    def assess_many(self, texts: Sequence[str], locales: Sequence[str]) -> list[Assessment]:
        if self.fail:
            raise RuntimeError("the model broke")
        assert self.go.wait(30)
        return super().assess_many(texts, locales)


async def test_a_participant_this_process_never_met_is_read_by_meaning(inbot: InProcessBot) -> None:
    await _enroll(inbot)  # straight to the database: the gate's memory of people is empty
    await inbot.say(PAT, UNLISTED)
    assert "988" in inbot.texts(PAT)[0]
    [escalation] = await _escalations(inbot)
    assert escalation.level == Level.URGENT and "semantic:minilm" in escalation.reasons
    await inbot.tick()
    assert "Found: preparing: by meaning" in inbot.last_text(DR)


async def test_a_late_answer_still_brings_the_crisis_reply_and_the_page(quick: InProcessBot) -> None:
    await _enroll(quick)
    semantic = quick.running.semantic
    assert isinstance(semantic, SemanticSecondOpinion)
    held = _Held(semantic.layer)
    semantic.layer = held
    await quick.say(PAT, UNLISTED)
    # The rules found nothing, the layer is late: the participant is answered as the rules say.
    assert SAVED in quick.last_text(PAT) and not await _escalations(quick)

    held.go.set()
    await asyncio.wait_for(asyncio.gather(*_gate(quick)._background), 30)
    assert "988" in quick.last_text(PAT)  # the crisis reply, after the note's answer
    [escalation] = await _escalations(quick)
    assert escalation.level == Level.URGENT and escalation.source == "message+semantic"
    await quick.tick()
    assert "Safety alert: URGENT" in quick.last_text(DR) and "preparing: by meaning" in quick.last_text(DR)


async def test_a_broken_layer_leaves_the_rules_answer_and_hangs_nobody(inbot: InProcessBot) -> None:
    await _enroll(inbot)
    semantic: Any = inbot.running.semantic
    semantic.layer = _Held(semantic.layer, fail=True)
    await asyncio.wait_for(inbot.say(PAT, "group was good today, see you thursday"), 30)
    assert SAVED in inbot.last_text(PAT)
    await asyncio.wait_for(inbot.say(PAT, "i want to kill myself"), 30)  # the rules still page
    assert any("988" in t for t in inbot.texts(PAT))
    assert [e.level for e in await _escalations(inbot)] == [Level.URGENT]
