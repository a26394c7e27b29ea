"""The routers' message pre-checks (bot/telegram/routing.py) skip a router only when aiogram would
have found no handler in it: every filter a pre-check evaluates refuses exactly when aiogram's own
call of that filter does, over the dispatcher's real routers, and a participant's everyday note
skips most routers on its way to the fallback."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from aiogram import Dispatcher, Router
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.filters import StateFilter
from aiogram.types import Chat, Message, User

from bot import app
from bot.db.models import Participant, ParticipantStatus, Staff
from bot.telegram.routing import _MAY_TAKE, _refuses, filters_on_the_loop, skip_routers_that_cannot_take

ROUTERS = ("groups", "start", "support", "help", "onboarding", "participant", "brief", "staff", "alerts", "sessions",
           "goals", "medications", "outreach", "charts", "tracks", "content")


def _dispatcher() -> Dispatcher:
    dp = Dispatcher()
    app._include_once_more(dp, *(getattr(app, name).router for name in ROUTERS), app.flow_routes.router,
                           app.fallback.router, app.edits.router)
    filters_on_the_loop(dp)
    skip_routers_that_cannot_take(dp)
    return dp


def _filters(router: Router) -> list[FilterObject]:
    observer = router.observers["message"]
    found = list(observer._handler.filters or [])
    for handler in observer.handlers:
        found += handler.filters or []
    for sub in router.sub_routers:
        found += _filters(sub)
    return found


def _message(text: str | None, *, caption: str | None = None, chat_type: str = "private") -> Message:
    return Message(message_id=1, date=datetime(2026, 12, 5, tzinfo=UTC), chat=Chat(id=-5 if chat_type != "private"
                   else 5, type=chat_type), from_user=User(id=5, is_bot=False, first_name="Sam"), text=text,
                   caption=caption)


TEXTS = ["Group was good today.", "/help", "  /mydata", "/start abcdefghijklmnopqrstuvwxyz012345", "/",
         "!help", "\u00a0/settings", "/checkin now", "6", "yes"]


def _actors() -> list[Any]:
    return [None, Staff(active=True), *(Participant(status=s) for s in ParticipantStatus)]


async def test_every_refusal_of_a_pre_check_is_aiograms_own() -> None:
    dp = _dispatcher()
    items = [item for item in _filters(dp) if _refuses(item) is not None]
    assert len(items) > 40  # commands, dialog states, magic filters, who is writing
    states: set[str | None] = {None, "*not-a-state*"}
    for item in items:
        if isinstance(item.callback, StateFilter):
            states.update(getattr(s, "state", s) for s in item.callback.states)
    messages = [_message(t) for t in TEXTS] + [_message(None, caption="/help"), _message(None, caption="a photo"),
                                              _message("hello", chat_type="supergroup")]
    checked = 0
    for item, message, actor, state in itertools.product(items, messages, _actors(), sorted(states, key=str)):
        data = {"actor": actor, "raw_state": state, "bot": None}
        refuses = _refuses(item)
        assert refuses is not None
        if refuses(message, data):
            checked += 1
            assert not await item.call(message, **data), (item.callback, message.text, actor, state)
    assert checked > 10_000


def test_a_participants_note_skips_most_routers() -> None:
    dp = _dispatcher()
    routers = list(dp.chain_tail)[1:]
    note = _message("Group was good today.")
    sam = Participant(status=ParticipantStatus.ACTIVE)
    walked = [r.name for r in routers if getattr(r, _MAY_TAKE)(note, {"actor": sam, "raw_state": None})]
    assert "fallback" in walked and "flows" in walked  # the note's own handler, and a typed answer's
    assert len(walked) <= len(routers) // 3, walked
    # A command is offered to every router that has one for a participant.
    command = _message("/mydata")
    assert "participant" in [r.name for r in routers if getattr(r, _MAY_TAKE)(command, {"actor": sam,
                                                                                        "raw_state": None})]
