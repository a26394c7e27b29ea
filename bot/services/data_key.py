"""The data key done properly: which key the database's text is encrypted with, checked at every
start, and re-encrypting everything under a new key in resumable batches.

- The fingerprint of the key in use (bot/db/types.py `fingerprint`: a hash that names the key and
  does not reveal it) is stored in `program_state` the first time the bot runs with a key.
- `check_data_key` runs before anything is written (the bot at start, and every operator command
  that opens the database): a different key, no key once text is encrypted, or an unfinished
  rotation stop it with one line saying how to fix it. Once the database keeps text encrypted,
  writing text without a key raises instead of storing it in the clear.
- `rotate` (`iopbot keys rotate`): every encrypted column, in batches of rows ordered by primary
  key, each batch committed with how far it got. Run it again after an interruption and it goes on
  from there; a value already under the new key is never touched twice. Plain text written before
  encryption was turned on is encrypted on the way. The new key's fingerprint becomes the
  database's only when every value carries it.

This module imports no aiogram (the operator commands use it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import ConfigError
from bot.db.models import Base, ProgramState
from bot.db.types import (
    ENCRYPTED_PREFIX,
    EncryptedText,
    configure_encryption,
    decrypt_value,
    encrypt_value,
    fernet_key,
    fingerprint,
    value_fingerprint,
)

log = logging.getLogger(__name__)

FINGERPRINT_STATE = "data_key_fingerprint"
ROTATION_STATE = "data_key_rotation"


class DataKeyError(ConfigError):
    """The data key does not fit this database; the message says how to fix it."""


@dataclass(frozen=True)
class EncryptedColumn:
    table: sa.Table
    column: str

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column}"

    @property
    def key(self) -> sa.Column[Any]:
        (pk,) = self.table.primary_key.columns  # every table with free text has a one-column key
        return pk

    @property
    def raw(self) -> Any:
        """The stored value as it is (no decryption)."""
        return sa.type_coerce(self.table.c[self.column], sa.Text)


def encrypted_columns() -> list[EncryptedColumn]:
    """Every column of free text in the schema, found from the models themselves."""
    import bot.db.all_models  # noqa: F401 - every model registered on Base.metadata

    return [EncryptedColumn(table, column.name)
            for table in Base.metadata.sorted_tables for column in table.columns
            if isinstance(column.type, EncryptedText)]


async def _state(session: AsyncSession, name: str) -> str | None:
    row = await session.get(ProgramState, name)
    return row.value if row is not None else None


async def _set_state(session: AsyncSession, name: str, value: str | None, now: datetime) -> None:
    row = await session.get(ProgramState, name)
    if value is None:
        if row is not None:
            await session.delete(row)
    elif row is None:
        session.add(ProgramState(name=name, value=value, updated_at=now))
    else:
        row.value, row.updated_at = value, now
    await session.flush()


async def _sample(session: AsyncSession, encrypted: bool) -> tuple[EncryptedColumn, str] | None:
    """One stored value that is encrypted (or one that is plain text), if any."""
    for col in encrypted_columns():
        condition = col.raw.like(f"{ENCRYPTED_PREFIX}%") if encrypted else ~col.raw.like(f"{ENCRYPTED_PREFIX}%")
        value = await session.scalar(sa.select(col.raw).where(col.raw.is_not(None), condition).limit(1))
        if value is not None:
            return col, value
    return None


def _short(fp: str) -> str:
    return fp[:12]


async def check_data_key(session: AsyncSession, key: str, now: datetime) -> str:
    """Check IOPBOT_DATA_KEY against this database and configure encryption; record the key's
    fingerprint on first use. Returns what was found, for the log (no secrets). Raises DataKeyError."""
    stored = await _state(session, FINGERPRINT_STATE)
    rotation = await _state(session, ROTATION_STATE)
    if rotation is not None:
        target = json.loads(rotation).get("to", "")
        raise DataKeyError(
            f"a data key rotation is unfinished (to the key with fingerprint {_short(target)}). Run `iopbot keys "
            "rotate` again with the same IOPBOT_DATA_KEY and IOPBOT_NEW_DATA_KEY to finish it, then start the bot "
            "with the new key.")
    given = fingerprint(key) if key else ""
    if stored:
        if not key:
            raise DataKeyError(
                f"this database keeps free text encrypted (key fingerprint {_short(stored)}), but IOPBOT_DATA_KEY is "
                "not set. Set IOPBOT_DATA_KEY to that key and start again; nothing is written in plain text.")
        if given != stored:
            raise DataKeyError(
                f"IOPBOT_DATA_KEY is not the key this database's text is encrypted with (the key given has "
                f"fingerprint {_short(given)}, the database's is {_short(stored)}). Set IOPBOT_DATA_KEY to the "
                "key in use; to change keys, run `iopbot keys rotate` with IOPBOT_NEW_DATA_KEY.")
        configure_encryption(key, required=True)
        return f"data key {_short(given)} matches"
    sample = await _sample(session, encrypted=True)
    if not key:
        if sample is not None:
            raise DataKeyError(
                f"this database holds encrypted text ({sample[0].name}), but IOPBOT_DATA_KEY is not set. Set it to "
                "the key the text was encrypted with and start again.")
        configure_encryption("", required=False)
        return "no data key: free text is stored in plain text"
    if sample is not None:
        marked = value_fingerprint(sample[1])
        try:
            if marked and marked != given:
                raise InvalidToken
            decrypt_value(Fernet(fernet_key(key)), sample[1])
        except InvalidToken:
            raise DataKeyError(
                f"IOPBOT_DATA_KEY does not decrypt the text already in this database ({sample[0].name}). Set it to "
                "the key that text was encrypted with.") from None
    await _set_state(session, FINGERPRINT_STATE, given, now)
    configure_encryption(key, required=True)
    log.info("data key %s recorded for this database; free text is encrypted from now on", _short(given))
    return f"data key {_short(given)} recorded"


# --- status ---------------------------------------------------------------------------------------------

@dataclass
class ColumnCount:
    name: str
    this_key: int = 0
    other_key: int = 0
    plain: int = 0


@dataclass
class KeyStatus:
    stored: str | None
    given: str | None
    rotation: dict[str, Any] | None
    columns: list[ColumnCount] = field(default_factory=list)


async def key_status(session: AsyncSession, key: str) -> KeyStatus:
    given = fingerprint(key) if key else None
    rotation = await _state(session, ROTATION_STATE)
    status = KeyStatus(await _state(session, FINGERPRINT_STATE), given, json.loads(rotation) if rotation else None)
    for col in encrypted_columns():
        count = ColumnCount(col.name)
        # The first 24 characters hold "enc:v2:" and the fingerprint; constants inline, so that
        # PostgreSQL sees the same expression in SELECT and GROUP BY.
        head = sa.func.substr(col.raw, sa.literal_column("1"), sa.literal_column("24"))
        rows = await session.execute(sa.select(head, sa.func.count()).where(col.raw.is_not(None)).group_by(head))
        for head, n in rows:
            marked = value_fingerprint(head)
            if marked is None:
                count.plain += int(n)
            elif given and marked == given:
                count.this_key += int(n)
            else:
                count.other_key += int(n)
        status.columns.append(count)
    return status


def format_status(status: KeyStatus) -> str:
    lines = [f"database's data key: {_short(status.stored) if status.stored else '(none recorded)'}",
             f"IOPBOT_DATA_KEY:      {_short(status.given) if status.given else '(not set)'}"
             + ("" if not (status.stored and status.given) else
                ("  (matches)" if status.stored == status.given else "  (DOES NOT MATCH)"))]
    if status.rotation:
        lines.append(f"rotation unfinished: to {_short(status.rotation.get('to', ''))}; run `iopbot keys rotate` "
                     "again to finish")
    lines.append("values per column: under this key / another key / plain text")
    for c in status.columns:
        lines.append(f"  {c.name:<32} {c.this_key:>8} {c.other_key:>8} {c.plain:>8}")
    return "\n".join(lines)


# --- rotation ---------------------------------------------------------------------------------------------

@dataclass
class RotationResult:
    re_encrypted: int = 0
    batches: int = 0
    finished: bool = False
    per_column: dict[str, int] = field(default_factory=dict)


async def rotate(sessionmaker: Any, old_key: str, new_key: str, now: Callable[[], datetime], *,
                 batch_size: int = 500, max_batches: int | None = None,
                 progress: Callable[[str], None] = lambda _: None) -> RotationResult:
    """Re-encrypt every value under `new_key`, one committed batch at a time (see the module doc).
    `old_key` is the key in use ('' when the database has only plain text). Stop the bot first."""
    if not new_key:
        raise DataKeyError("IOPBOT_NEW_DATA_KEY is not set: put the new key there (and the current one in "
                           "IOPBOT_DATA_KEY)")
    old_fp, new_fp = (fingerprint(old_key) if old_key else ""), fingerprint(new_key)
    old, new = (Fernet(fernet_key(old_key)) if old_key else None), Fernet(fernet_key(new_key))
    async with sessionmaker() as session:
        stored = await _state(session, FINGERPRINT_STATE)
        raw_rotation = await _state(session, ROTATION_STATE)
        rotation = json.loads(raw_rotation) if raw_rotation else None
        if rotation is not None and rotation.get("to") != new_fp:
            raise DataKeyError(f"an unfinished rotation is going to another key ({_short(rotation.get('to', ''))}); "
                               "finish it with that IOPBOT_NEW_DATA_KEY first")
        if stored and stored not in (old_fp, new_fp):
            raise DataKeyError(f"IOPBOT_DATA_KEY is not the database's key (fingerprint {_short(stored)}); set it "
                               "to the key in use")
        if stored == new_fp and rotation is None and old_fp != new_fp:
            raise DataKeyError("the database already uses IOPBOT_NEW_DATA_KEY; nothing to rotate")
        if rotation is None:
            rotation = {"from": old_fp, "to": new_fp, "done": {}}
            await _set_state(session, ROTATION_STATE, json.dumps(rotation), now())
            await session.commit()
    configure_encryption("", required=False)  # this command reads and writes stored values as they are
    result = RotationResult()
    for col in encrypted_columns():
        after = rotation["done"].get(col.name)
        count = 0
        while True:
            if max_batches is not None and result.batches >= max_batches:
                progress(f"stopped after {result.batches} batch(es); run `iopbot keys rotate` again to go on")
                return result
            async with sessionmaker() as session:
                query = sa.select(col.key, col.raw).where(col.raw.is_not(None)).order_by(col.key).limit(batch_size)
                if after is not None:
                    query = query.where(col.key > after)
                rows = (await session.execute(query)).all()
                if not rows:
                    break
                for pk, raw in rows:
                    marked = value_fingerprint(raw)
                    if marked == new_fp:
                        continue
                    if marked is not None:
                        if old is None or (marked and marked != old_fp):
                            raise DataKeyError(f"{col.name} row {pk} is encrypted with a key that is neither the "
                                               "current nor the new one; it cannot be re-encrypted")
                        try:
                            text = decrypt_value(old, raw)
                        except InvalidToken:
                            raise DataKeyError(f"{col.name} row {pk} does not decrypt with IOPBOT_DATA_KEY") from None
                    else:
                        text = raw  # plain text from before encryption was turned on
                    await session.execute(sa.update(col.table).where(col.key == pk).values(
                        {col.column: sa.literal(encrypt_value(new, new_fp, text), sa.Text)}))
                    count += 1
                after = rows[-1][0]
                rotation["done"][col.name] = after
                await _set_state(session, ROTATION_STATE, json.dumps(rotation), now())
                await session.commit()
            result.batches += 1
            result.re_encrypted += count - result.per_column.get(col.name, 0)
            result.per_column[col.name] = count
        result.per_column[col.name] = count
        progress(f"{col.name}: {count} value(s) re-encrypted")
    async with sessionmaker() as session:
        left = 0
        for col in encrypted_columns():  # a bot left running may have written with the old key meanwhile
            left += int(await session.scalar(sa.select(sa.func.count()).where(
                col.raw.is_not(None), ~col.raw.like(f"enc:v2:{new_fp}:%")).select_from(col.table)) or 0)
        if left:
            rotation["done"] = {}
            await _set_state(session, ROTATION_STATE, json.dumps(rotation), now())
            await session.commit()
            raise DataKeyError(f"{left} value(s) were written with the old key while rotating (is the bot "
                               "running?). Stop the bot and run `iopbot keys rotate` again.")
        await _set_state(session, FINGERPRINT_STATE, new_fp, now())
        await _set_state(session, ROTATION_STATE, None, now())
        await session.commit()
    result.finished = True
    return result
