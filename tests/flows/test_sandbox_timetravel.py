"""The sandbox's clock controls name what comes next ("Next: a medication reminder at 8:00 AM"): every
kind of scheduled row the running bot sends has a label a visitor understands, not a code."""

from __future__ import annotations

from typing import Any

import pytest

from bot.clock import ManualClock
from bot.config import Settings
from bot.sandbox.botapi import FakeBotAPI
from bot.sandbox.timetravel import CHECKIN_KIND_MARKERS, KIND_LABELS, describe_kind
from bot.services.scheduling.outbox import OutboxWorker
from tests.support.inproc import InProcessBot


async def _registered_kinds(bot_settings: Settings, api: FakeBotAPI, clock: ManualClock,
                            monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The row kinds the assembled bot registers with its outbox worker (assembled as `inbot` is)."""
    kinds: list[str] = []
    register = OutboxWorker.register

    def recording(self: OutboxWorker, kind: str, *args: Any, **kwargs: Any) -> None:
        kinds.append(kind)
        register(self, kind, *args, **kwargs)

    monkeypatch.setattr(OutboxWorker, "register", recording)
    running = await InProcessBot.start(bot_settings, api, clock)
    await running.close()
    return kinds


async def test_every_kind_the_running_bot_sends_has_a_label(bot_settings: Settings, api: FakeBotAPI,
                                                            clock: ManualClock,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = await _registered_kinds(bot_settings, api, clock, monkeypatch)
    assert {"checkin", "alert_step", "med_reminder", "goal_progress", "outreach_message", "session_brief",
            "daily_digest"} <= set(kinds)  # the list is the real one
    unlabelled = [k for k in kinds if k not in KIND_LABELS and not any(m in k for m in CHECKIN_KIND_MARKERS)]
    assert unlabelled == [], " ".join(unlabelled)
    for kind in kinds:
        label = describe_kind(kind)
        assert label.startswith(("a ", "an ", "the ")) and "_" not in label, (kind, label)
