"""In-process bot fixtures: the assembled bot against a local Bot API in this process."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from bot.clock import ManualClock
from bot.config import Settings
from bot.sandbox.botapi import FakeBotAPI, RateLimits
from tests.support.inproc import InProcessBot, inproc_settings


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = FakeBotAPI(rate_limits=RateLimits(enabled=False))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def bot_settings(settings: Settings, api: FakeBotAPI, db_url: str) -> Settings:
    # No jitter, so that times in assertions are exact; its own test checks the jitter.
    return inproc_settings(settings, api, db_url, schedule=dataclasses.replace(settings.schedule, jitter_minutes=0.0))


@pytest.fixture
async def inbot(bot_settings: Settings, api: FakeBotAPI, clock: ManualClock) -> AsyncIterator[InProcessBot]:
    running = await InProcessBot.start(bot_settings, api, clock)
    yield running
    await running.close()
