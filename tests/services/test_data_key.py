"""The data key done properly, on SQLite and PostgreSQL: the key's fingerprint is recorded; a
different key, or none once text is encrypted, is refused with a way out; text is never written in
the clear once encryption was in use; `iopbot keys rotate` re-encrypts in resumable batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from bot.cli import main
from bot.context import AppContext
from bot.db.models import DialogState, InboundMessage, Participant, ProgramState, Staff
from bot.db.types import EncryptionKeyMissing, configure_encryption, fernet_key, fingerprint
from bot.services.data_key import (
    FINGERPRINT_STATE,
    ROTATION_STATE,
    DataKeyError,
    check_data_key,
    key_status,
    rotate,
)

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
OLD, NEW = "the-old-key-0123456789abcdef", "the-new-key-fedcba9876543210"


@pytest.fixture(autouse=True)
def plain_text_afterwards() -> Iterator[None]:
    yield
    configure_encryption("")  # process-wide: leave it as the other tests expect


async def _participant(ctx: AppContext) -> int:
    async with ctx.sessionmaker() as s:
        staff = Staff(alias="dr", role="therapist", created_at=NOW)
        s.add(staff)
        await s.flush()
        p = Participant(alias="P-1", status="active", timezone="UTC", checkin_time="09:00", quiet_start="22:00",
                        quiet_end="07:00", therapist_id=staff.id, created_at=NOW)
        s.add(p)
        await s.commit()
        return p.id


async def _write(ctx: AppContext, pid: int, texts: list[str]) -> None:
    async with ctx.sessionmaker() as s:
        for text in texts:
            s.add(InboundMessage(participant_id=pid, received_at=NOW, text=text))
        await s.commit()


async def _check(ctx: AppContext, key: str) -> str:
    async with ctx.sessionmaker() as s:
        found = await check_data_key(s, key, NOW)
        await s.commit()
        return found


async def _raw(ctx: AppContext) -> list[str]:
    async with ctx.sessionmaker() as s:
        return list((await s.scalars(sa.text("SELECT text FROM inbound_messages ORDER BY id"))).all())


async def test_the_key_is_recorded_and_a_wrong_or_missing_key_is_refused(ctx: AppContext) -> None:
    pid = await _participant(ctx)
    assert await _check(ctx, "") == "no data key: free text is stored in plain text"
    await _write(ctx, pid, ["plain, from before"])
    assert await _check(ctx, OLD) == f"data key {fingerprint(OLD)[:12]} recorded"
    async with ctx.sessionmaker() as s:
        assert (await s.get(ProgramState, FINGERPRINT_STATE)).value == fingerprint(OLD)  # type: ignore[union-attr]
    assert OLD not in fingerprint(OLD) and len(fingerprint(OLD)) == 16  # names the key, does not reveal it
    await _write(ctx, pid, ["I had a rough day"])
    raw = await _raw(ctx)
    assert raw[0] == "plain, from before" and raw[1].startswith(f"enc:v2:{fingerprint(OLD)}:")
    assert "rough" not in raw[1]

    with pytest.raises(DataKeyError) as wrong:
        await _check(ctx, "someone-elses-key")
    message = str(wrong.value)
    assert "is not the key this database's text is encrypted with" in message and "iopbot keys rotate" in message
    assert "someone-elses-key" not in message and OLD not in message and "\n" not in message
    with pytest.raises(DataKeyError, match="IOPBOT_DATA_KEY is\\s+not set"):
        await _check(ctx, "")
    # Whatever a process does without the key, text is never written in the clear.
    configure_encryption("", required=True)
    with pytest.raises(sa.exc.StatementError) as refused:
        await _write(ctx, pid, ["would be stored in plain text"])
    assert isinstance(refused.value.orig, EncryptionKeyMissing)
    assert len(await _raw(ctx)) == 2
    assert await _check(ctx, OLD) == f"data key {fingerprint(OLD)[:12]} matches"
    async with ctx.sessionmaker() as s:
        texts = (await s.scalars(select(InboundMessage.text).order_by(InboundMessage.id))).all()
    assert texts == ["plain, from before", "I had a rough day"]


async def test_text_encrypted_before_fingerprints_were_recorded_is_checked_too(ctx: AppContext) -> None:
    from cryptography.fernet import Fernet

    pid = await _participant(ctx)
    legacy = "enc:v1:" + Fernet(fernet_key(OLD)).encrypt(b"older words").decode()
    async with ctx.sessionmaker() as s:
        await s.execute(sa.text("INSERT INTO inbound_messages (participant_id, received_at, text, level, categories, "
                                "reasons) VALUES (:p, :at, :t, 0, '', '')"),
                        {"p": pid, "at": NOW.replace(tzinfo=None) if ctx.settings.database.url.startswith("sqlite")
                         else NOW, "t": legacy})
        await s.commit()
    with pytest.raises(DataKeyError, match="holds encrypted text \\(inbound_messages.text\\), but IOPBOT_DATA_KEY"):
        await _check(ctx, "")
    with pytest.raises(DataKeyError, match="does not decrypt the text already in this database"):
        await _check(ctx, NEW)
    assert "recorded" in await _check(ctx, OLD)
    async with ctx.sessionmaker() as s:
        assert await s.scalar(select(InboundMessage.text)) == "older words"


async def test_rotation_goes_in_resumable_batches_and_the_bot_waits_for_it(ctx: AppContext) -> None:
    pid = await _participant(ctx)
    await _write(ctx, pid, ["from before the key"])
    await _check(ctx, OLD)
    await _write(ctx, pid, [f"message {n}" for n in range(5)])
    async with ctx.sessionmaker() as s:
        s.add(DialogState(key="dialog:1", state="checkin", data='{"mood": 3}'))
        await s.commit()
    lines: list[str] = []
    first = await rotate(ctx.sessionmaker, OLD, NEW, lambda: NOW, batch_size=2, max_batches=2, progress=lines.append)
    assert not first.finished and first.batches == 2 and "run `iopbot keys rotate` again" in lines[-1]
    with pytest.raises(DataKeyError, match="rotation is unfinished"):  # the bot does not start half-way
        await _check(ctx, OLD)
    with pytest.raises(DataKeyError, match="unfinished rotation is going to another key"):
        await rotate(ctx.sessionmaker, OLD, "a third key", lambda: NOW)
    done = await rotate(ctx.sessionmaker, OLD, NEW, lambda: NOW, batch_size=2, progress=lines.append)
    assert done.finished
    assert done.re_encrypted + first.re_encrypted == 7  # 6 messages (one was plain text) and the dialog
    raw = await _raw(ctx)
    assert all(r.startswith(f"enc:v2:{fingerprint(NEW)}:") for r in raw)
    with pytest.raises(DataKeyError, match="is not the key"):
        await _check(ctx, OLD)
    await _check(ctx, NEW)
    async with ctx.sessionmaker() as s:
        texts = (await s.scalars(select(InboundMessage.text).order_by(InboundMessage.id))).all()
        dialog = await s.get(DialogState, "dialog:1")
        assert await s.get(ProgramState, ROTATION_STATE) is None
    assert texts == ["from before the key"] + [f"message {n}" for n in range(5)]
    assert dialog is not None and dialog.data == '{"mood": 3}'
    async with ctx.sessionmaker() as s:
        status = await key_status(s, NEW)
    counts = {c.name: (c.this_key, c.other_key, c.plain) for c in status.columns}
    assert counts["inbound_messages.text"] == (6, 0, 0) and counts["dialog_states.data"] == (1, 0, 0)
    with pytest.raises(DataKeyError, match="not the database's key"):
        await rotate(ctx.sessionmaker, OLD, "another", lambda: NOW)


def test_keys_commands(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[program]\nname = "X"\n[database]\nurl = "{db_url}"\n'
                      f'[content]\ndirectory = "{REPO / "content"}"\n')
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def run(*args: str, key: str = "", new: str = "") -> tuple[int, str, str]:
        for name, value in (("IOPBOT_DATA_KEY", key), ("IOPBOT_NEW_DATA_KEY", new)):
            if value:
                monkeypatch.setenv(name, value)
            else:
                monkeypatch.delenv(name, raising=False)
        code = main(["--config", str(config), *args])
        out = capsys.readouterr()
        assert OLD not in out.out + out.err and NEW not in out.out + out.err
        return code, out.out, out.err

    assert run("doctor", key=OLD)[0] == 0  # the first command with a key records it
    code, out, _ = run("keys", "status", key=OLD)
    assert code == 0 and f"database's data key: {fingerprint(OLD)[:12]}" in out and "(matches)" in out
    code, out, _ = run("keys", "status", key=NEW)
    assert code == 1 and "DOES NOT MATCH" in out
    code, _, err = run("doctor", key=NEW)
    assert code == 2 and err.startswith("config error: IOPBOT_DATA_KEY is not the key") and err.count("\n") == 1
    code, _, err = run("keys", "rotate", key=OLD)
    assert code == 2 and "IOPBOT_NEW_DATA_KEY is not set" in err
    code, out, _ = run("keys", "rotate", "--batch-size", "1", key=OLD, new=NEW)
    assert code == 0 and "done: 0 value(s) re-encrypted. Now set IOPBOT_DATA_KEY to the new key" in out
    assert run("keys", "status", key=NEW)[0] == 0
    assert run("doctor", key=NEW)[0] == 0
