"""Alembic environment: runs migrations with the async engine the bot uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from bot.db.all_models import Base
from bot.db.engine import make_engine

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Several workers may start at once: only one migrates, the others wait and find it done.
            await conn.exec_driver_sql("SELECT pg_advisory_lock(7412001)")
        await conn.run_sync(_run)
        await conn.commit()
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql("SELECT pg_advisory_unlock(7412001)")
            await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_main())
