"""Coverage is checked, not assumed: `iopbot doctor` names every participant nobody can be paged for
(exit 1), and the leads get a daily notice while the gap lasts. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.clock import ManualClock, OffsetFileClock
from bot.context import AppContext
from bot.db.models import ActionStatus, ScheduledAction, Staff, StaffRole
from bot.services.escalation.coverage import check_coverage, plan_coverage_notices
from bot.services.scheduling.rows import enqueue
from tests.support.inproc import add_participant, add_staff

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 in New York, the program's time zone


@pytest.fixture
def iopbot(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
           capsys: pytest.CaptureFixture[str]):
    """The `iopbot` command, run in this process against the test's database."""
    config = tmp_path / "config.toml"
    config.write_text(f'[program]\nname = "Test IOP"\n\n[database]\nurl = "{db_url}"\n\n'
                      f'[content]\ndirectory = "{REPO / "content"}"\n')
    clock_file = tmp_path / "clock"
    OffsetFileClock.write_offset(clock_file, NOW.timestamp() - time.time())
    monkeypatch.setenv("IOPBOT_CLOCK_FILE", str(clock_file))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("IOPBOT_DATA_KEY", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--config", str(config), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_doctor_names_the_uncovered_and_exits_non_zero(iopbot) -> None:  # type: ignore[no-untyped-def]
    assert iopbot("invite", "staff", "--alias", "dr-new", "--role", "therapist")[0] == 0
    assert iopbot("invite", "participant", "--alias", "P-1", "--therapist", "dr-new")[0] == 0
    code, out, err = iopbot("doctor")
    assert code == 1, out
    assert "UNCOVERED P-1 (invited): dr-new (clinician): no linked Telegram chat" in out
    assert "Staff without a linked Telegram chat:\n  dr-new (therapist)" in out
    assert "IOPBOT_DATA_KEY is not set" in out and "after_hours_phone is empty" in out
    assert err.strip() == "doctor: 1 participant(s) have nobody who can be paged"
    code, out, _ = iopbot("doctor", "--json")
    data = json.loads(out)
    assert code == 1 and [u["alias"] for u in data["uncovered"]] == ["P-1"]
    assert data["staff_without_chat"] == ["dr-new"]


async def test_reachable_backup_or_lead_covers_and_blocked_or_inactive_staff_do_not(
        ctx: AppContext, clock: ManualClock) -> None:
    now = clock.now()
    async with ctx.sessionmaker() as s:
        therapist = await add_staff(s, "dr-a", 900, now)
        backup = await add_staff(s, "dr-b", 901, now)
        p1 = await add_participant(s, "P-1", therapist, 1, now)
        p1.backup_id = backup.id
        await s.commit()
        report = await check_coverage(s, ctx.settings, now)
        assert not report.uncovered and not report.clinician_unreachable

        # The therapist blocked the bot (their last message failed with 403): the backup covers.
        await enqueue(s, kind="staff_notice", key="n1", due_at=now, staff_id=therapist.id, now=now)
        row = await s.scalar(select(ScheduledAction).where(ScheduledAction.key == "n1"))
        row.status, row.last_error = ActionStatus.FAILED, "blocked by the user"
        await s.commit()
        report = await check_coverage(s, ctx.settings, now)
        assert [p.alias for p in report.clinician_unreachable] == ["P-1"] and not report.uncovered
        assert report.clinician_unreachable[0].chain[0].why_not == "blocked the bot"

        # Marked unreachable by a page that got 403 (bot/services/escalation/paging.py): the same.
        row.status, therapist.unreachable_at = ActionStatus.SENT, now
        await s.commit()
        report = await check_coverage(s, ctx.settings, now)
        assert report.clinician_unreachable[0].chain[0].why_not == "blocked the bot"

        backup.active = False
        await s.commit()
        report = await check_coverage(s, ctx.settings, now)
        assert [p.alias for p in report.uncovered] == ["P-1"]
        assert [r.why_not for r in report.uncovered[0].chain] == ["blocked the bot", "deactivated"]

        # A lead with a chat is in everyone's chain.
        lead = Staff(alias="lin", role=StaffRole.LEAD, telegram_user_id=903, chat_id=903, created_at=now)
        s.add(lead)
        await s.commit()
        assert not (await check_coverage(s, ctx.settings, now)).uncovered


async def test_a_gap_with_no_lead_to_tell_is_logged_not_lost(ctx: AppContext,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    now = NOW
    async with ctx.sessionmaker() as s:
        late = Staff(alias="dr-late", role="therapist", created_at=now)
        s.add(late)
        await s.flush()
        await add_participant(s, "P-9", late, 9, now)
        await s.commit()
        assert await plan_coverage_notices(s, ctx.settings, now) == 0
        report = await check_coverage(s, ctx.settings, now)
    assert [p.alias for p in report.uncovered] == ["P-9"]
    assert "no lead or admin can be told" in caplog.text and "P-9" not in caplog.text


def test_doctor_says_when_the_semantic_layer_is_off() -> None:
    from dataclasses import replace

    from bot.config import SemanticSettings, Settings
    from bot.services.escalation.coverage import weak_settings

    on = Settings()
    off = replace(on, semantic=SemanticSettings(enabled=False))
    assert not any("[semantic]" in line for line in weak_settings(on))
    assert any(line.startswith("[semantic] enabled = false: only the phrase rules") for line in weak_settings(off))
