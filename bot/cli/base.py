"""What the command modules share: the settings named by --config, and one transaction on an
up-to-date schema. Imports nothing heavy: it is loaded for every command."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.config import Settings, load_settings


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config))


async def with_session(settings: Settings, work: Callable[[Any], Awaitable[Any]], *,
                       check_key: bool = True) -> Any:
    """Run `work` in one transaction on an up-to-date schema, after checking the data key (the same
    check as the bot's start: a command never writes text in the clear or with the wrong key)."""
    from bot.clock import clock_from_environment
    from bot.db.engine import make_engine, make_sessionmaker, upgrade_async
    from bot.services.data_key import check_data_key

    await upgrade_async(settings.database.url)
    engine = make_engine(settings.database.url)
    try:
        if check_key:
            async with make_sessionmaker(engine)() as session:
                await check_data_key(session, settings.secrets.data_key, clock_from_environment().now())
                await session.commit()
        async with make_sessionmaker(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()
