"""End-to-end fixtures. Starting a bot process costs a second or more even from the fork server
(tests/support/forkserver.py: it still migrates, loads the content and builds the safety rules, as
`iopbot run` does), so functional tests share one process per module and database, each test using
its own Telegram users; tests that kill or reconfigure the bot start their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox.botapi import BotAPIControl, FakeBotAPI, RateLimits
from tests.support.databases import create_postgres_database, create_sqlite_database
from tests.support.e2e import BotProcess, running


def relaxed_limits() -> RateLimits:
    # Telegram's per-chat limit is relaxed for functional tests (a person reads a dozen replies in
    # a few seconds here); the sender and chaos tests use the real limits.
    return RateLimits(per_chat_per_second=100.0, per_chat_burst=100.0)


@pytest.fixture(scope="module")
async def botapi() -> AsyncIterator[FakeBotAPI]:
    api = FakeBotAPI(rate_limits=relaxed_limits())
    await api.start()
    yield api
    await api.stop()


@pytest.fixture(scope="module")
async def control(botapi: FakeBotAPI) -> AsyncIterator[BotAPIControl]:
    assert botapi.base_url
    async with BotAPIControl(botapi.base_url) as c:
        yield c


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "postgres":
        return create_postgres_database()
    return create_sqlite_database(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="module")
async def shared_bot(tmp_path_factory: pytest.TempPathFactory, botapi: FakeBotAPI, module_db_url: str,
                     control: BotAPIControl) -> AsyncIterator[BotProcess]:
    proc = BotProcess(tmp_path_factory.mktemp("bot"), botapi.base_url or "", module_db_url)
    async with running(proc, control):
        yield proc


@pytest.fixture
async def own_bot(tmp_path: Path, botapi: FakeBotAPI, db_url: str, control: BotAPIControl,
                  request: pytest.FixtureRequest) -> AsyncIterator[BotProcess]:
    """A bot process for this test alone (to kill it, or with its own config: @pytest.mark.bot_config)."""
    marker = request.node.get_closest_marker("bot_config")
    proc = BotProcess(tmp_path, botapi.base_url or "", db_url, extra_config=marker.args[0] if marker else "")
    yield proc
    await proc.stop_async()
