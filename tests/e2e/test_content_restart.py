"""Content delivery across a restart and a hot reload, with a bot process of its own running on a
copy of the content folder: an exercise left half-way by a crash is resumed after the restart,
a good edit to a content file is served without a restart, and a broken edit is not: the bot
keeps serving the previous version and says so in its log (file and error count, never text).

The crash is a SIGKILL right after the bot's last message arrived. Replies are durable (written
with the update's commit as a `reply` row, crossed off a moment after Telegram's 200), so the
killed process may leave that message's row behind; the next process sends it again once the
row's lease runs out: at most one repeat, never a loss (bot/services/scheduling/replies.py). The
test waits for that before going on, so that the steps after the restart read what they caused."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.db.engine import make_engine, make_sessionmaker
from bot.db.models import ScheduledAction
from bot.sandbox.botapi import BotAPIControl
from bot.services.scheduling.replies import REPLY_KIND
from tests.support.e2e import REPO, BotProcess, Person, buttons, enroll_participant, enroll_staff

pytestmark = pytest.mark.e2e


async def _next(person: Person, contains: str) -> dict:  # type: ignore[type-arg]
    message = (await person.read())[0]
    assert contains in (message.get("visible_text") or ""), message.get("visible_text")
    return message


async def _wait_for_log(proc: BotProcess, text: str, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while text not in proc.log_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"the bot did not log {text!r} within {timeout}s:\n{proc.log_tail()}")
        await asyncio.sleep(0.05)  # waiting for the bot's scheduler tick, not for the clock


async def _no_reply_rows_left(proc: BotProcess, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Until the killed process's reply rows are gone: sent again by the new one once their lease
    (3 s in these tests) ran out, or never left behind at all."""
    engine = make_engine(proc.db_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            async with make_sessionmaker(engine)() as session:
                left = await session.scalar(select(func.count()).select_from(ScheduledAction)
                                            .where(ScheduledAction.kind == REPLY_KIND))
            if not left:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{left} reply row(s) still waiting after {timeout}s:\n{proc.log_tail()}")
            await asyncio.sleep(0.1)  # waiting for the new process's outbox, not for the clock
    finally:
        await engine.dispose()


async def _stress_titles(person: Person) -> list[str]:
    await person.say("/learn")
    await _next(person, "Pick a topic")
    await person.press("Stress")
    return buttons(await person.wait_for_message("Pick something to read"))


async def test_resume_after_a_crash_and_hot_reload_keeps_the_last_good_version(
        own_bot: BotProcess, control: BotAPIControl, tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(REPO / "content", content)
    own_bot.extra_config = f'[content]\ndirectory = "{content}"'
    own_bot.start()
    await own_bot.wait_ready(control)
    await enroll_staff(own_bot, control, "dr-reload")
    sam = await enroll_participant(own_bot, control, "P-reload", "dr-reload")

    # Half-way through an exercise when the bot crashes.
    await sam.say("/skills")
    await _next(sam, "Skills to practise")
    await sam.press("5-4-3-2-1 grounding")
    await _next(sam, "your senses can help you")
    await sam.press("Let's start")
    await _next(sam, "5 things you can see")
    await sam.press("Done")
    last = await _next(sam, "4 things you can feel")
    own_bot.kill()
    own_bot.start()
    await own_bot.wait_ready(control)
    await _no_reply_rows_left(own_bot)
    repeated = (await sam.all_messages())[sam.seen:]  # the last message once more, or nothing
    assert [m.get("visible_text") for m in repeated] in ([], [last["visible_text"]]), repeated
    sam.seen += len(repeated)
    await sam.press("Done")  # the button of the step they were on still works
    await _next(sam, "3 things you can hear")
    await sam.say("/skills")  # sets it aside; "Continue" brings it back where it was
    menu = await _next(sam, "Skills to practise")
    assert buttons(menu)[0] == "▶ Continue: 5-4-3-2-1 grounding"
    await sam.press("Continue: 5-4-3-2-1 grounding")
    assert "3 things you can hear" in (await _next(sam, "where you left off"))["visible_text"]
    await sam.press("Done")
    await _next(sam, "2 things you can smell")
    await sam.press("Done")
    await _next(sam, "1 thing you can taste")
    await sam.press("Done")
    await _next(sam, "How do you feel now?")
    await sam.press("A bit calmer")
    await _next(sam, "Good work")
    await _next(sam, "Was this helpful?")

    # A good edit is served at once, without a restart.
    snippet = content / "en" / "psychoeducation" / "stress-and-your-body.md"
    original = snippet.read_text()
    snippet.write_text(original.replace('title = "Stress and your body"', 'title = "How stress feels in your body"'))
    await _wait_for_log(own_bot, "content reloaded (1 files changed)")
    assert "How stress feels in your body" in await _stress_titles(sam)

    # A broken edit (a misspelt key, and new words): the previous version stays in service.
    broken = original.replace('title = "Stress and your body"', 'titel = "Broken title"')
    snippet.write_text(broken.replace("Stress is your body's alarm.", "UNREVIEWED WORDS."))
    # Two errors: the unknown key 'titel' and the missing title.
    await _wait_for_log(own_bot, f"content reload refused: {snippet} has 2 errors; still serving the previous")
    assert "How stress feels in your body" in await _stress_titles(sam)
    await sam.press("How stress feels in your body")
    read = await _next(sam, "How stress feels in your body")
    assert "Stress is your body's alarm" in read["visible_text"] and "UNREVIEWED" not in read["visible_text"]
    assert "UNREVIEWED" not in own_bot.log_text() and "Broken title" not in own_bot.log_text()
