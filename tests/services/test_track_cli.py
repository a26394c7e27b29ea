"""Tracks from the command line, on SQLite and PostgreSQL: `iopbot invite participant --track` and
`iopbot participant track ALIAS [NAME]` as an operator uses them (#15 item 8)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.clock import OffsetFileClock
from bot.db.models import AuditEntry, Invite, Participant
from tests.services.test_people import NOW, REPO, Operator


def _operator(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
              tracks: str) -> Operator:
    config = tmp_path / "config.toml"
    config.write_text(f'[program]\nname = "Test IOP"\n\n[database]\nurl = "{db_url}"\n\n'
                      f'[content]\ndirectory = "{REPO / "content"}"\n{tracks}\n')
    clock_file = tmp_path / "clock"
    OffsetFileClock.write_offset(clock_file, NOW.timestamp() - time.time())
    monkeypatch.setenv("IOPBOT_CLOCK_FILE", str(clock_file))
    for name in ("DATABASE_URL", "IOPBOT_DATA_KEY", "BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return Operator(config, db_url, capsys)


@pytest.fixture
def iopbot(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> Operator:
    return _operator(tmp_path, db_url, monkeypatch, capsys, 'tracks = ["mental_health", "substance_use"]')


def _track(iopbot: Operator, alias: str) -> Any:
    async def work(session: Any) -> Any:
        return await session.scalar(select(Participant.track).where(Participant.alias == alias))
    return iopbot.db(work)


def _audit(iopbot: Operator) -> list[str]:
    async def work(session: Any) -> list[str]:
        return list((await session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("track:%"))
                                           .order_by(AuditEntry.id))).all())
    return iopbot.db(work)


def test_invite_with_a_track_and_an_unknown_track_issues_nothing(iopbot: Operator) -> None:
    iopbot.token("invite", "staff", "--alias", "dr-t", "--role", "therapist")
    code, out, err = iopbot("invite", "participant", "--alias", "P-1", "--therapist", "dr-t", "--track", "mood")
    assert code == 2 and out == ""
    assert err.strip() == ("error: --track: unknown track 'mood': the program's tracks are mental_health, "
                           "substance_use (or none for every snippet)")
    assert len(err.strip().splitlines()) == 1

    async def invites(session: Any) -> int:
        return len((await session.scalars(select(Invite).where(Invite.participant_id.is_not(None)))).all())
    assert iopbot.db(invites) == 0 and _track(iopbot, "P-1") is None  # nothing was written

    iopbot.token("invite", "participant", "--alias", "P-1", "--therapist", "dr-t", "--track", "substance_use")
    assert _track(iopbot, "P-1") == "substance_use"
    iopbot.token("invite", "participant", "--alias", "P-2", "--therapist", "dr-t")
    assert _track(iopbot, "P-2") is None  # no --track: every snippet
    iopbot.token("invite", "participant", "--alias", "P-1", "--therapist", "dr-t")  # re-invited: the track stays
    assert _track(iopbot, "P-1") == "substance_use"


def test_participant_track_shows_sets_clears_and_refuses(iopbot: Operator) -> None:
    iopbot.token("invite", "staff", "--alias", "dr-u", "--role", "therapist")
    iopbot.token("invite", "participant", "--alias", "P-3", "--therapist", "dr-u")
    code, out, _ = iopbot("participant", "track", "P-3")
    assert code == 0 and out.strip() == "P-3: track none (the program's tracks: mental_health, substance_use)"
    code, out, _ = iopbot("participant", "track", "P-3", "mental_health")
    assert code == 0 and out.startswith("P-3: track mental_health (was none)")
    assert _track(iopbot, "P-3") == "mental_health"
    code, out, _ = iopbot("participant", "track", "P-3", "mental_health")
    assert code == 0 and out.strip() == "P-3: track mental_health (unchanged)"
    code, _, err = iopbot("participant", "track", "P-3", "dual")
    assert code == 2 and "unknown track 'dual'" in err and "mental_health, substance_use" in err
    code, _, err = iopbot("participant", "track", "nobody", "mental_health")
    assert code == 2 and err.strip() == "error: no participant with alias 'nobody'"
    code, out, _ = iopbot("participant", "track", "P-3", "none")
    assert code == 0 and out.startswith("P-3: track none (was mental_health)") and _track(iopbot, "P-3") is None
    assert _audit(iopbot) == ["track:mental_health", "track:none"]  # a change is audited; the same track is not


def test_without_configured_tracks_a_track_cannot_be_set(tmp_path: Path, db_url: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    iopbot = _operator(tmp_path, db_url, monkeypatch, capsys, "")
    iopbot.token("invite", "staff", "--alias", "dr-v", "--role", "therapist")
    code, _, err = iopbot("invite", "participant", "--alias", "P-4", "--therapist", "dr-v", "--track",
                          "substance_use")
    assert code == 2 and "this program has no tracks" in err and "[content] tracks" in err
    iopbot.token("invite", "participant", "--alias", "P-4", "--therapist", "dr-v")
    code, out, _ = iopbot("participant", "track", "P-4")
    assert code == 0 and out.strip() == "P-4: track none (this program has no tracks)"
