"""10,000 generated updates (Hypothesis) into the assembled dispatcher, with the real Bot talking
HTTP to the local Bot API: no unhandled exception, and no reply carrying someone else's data.

Generated: random texts (any Unicode, empty, over 4,096 characters), commands with random
arguments, crisis phrases, messages from groups and channels, edited messages, updates of kinds the
bot does not know or that aiogram has no model for, messages missing optional or required fields,
captions, photos and stickers instead of text, callback data that was never issued (well-formed
`esc:`/`att:`/`fl:` data with random ids, and junk), and update ids drawn from a small range so
that many are replays. Senders: two enrolled participants, their two clinicians, and strangers.

Each participant has a distinctive alias and has written a note with a distinctive word. The alias
and the word may only ever appear in their own private chat and their own clinician's chat:
everything the bot sends (texts, captions, edits, exported files) is checked after every example,
and the scheduler tick runs after each example, so alerts and notices are checked too.

Updates aiogram cannot parse (a required field missing, a wrong type) never reach the bot: with
polling, aiogram parses the whole getUpdates answer; here they are counted and skipped. An update
of a kind aiogram has no event type for goes through our middlewares and is then skipped by aiogram
with a warning (the bot only ever asks Telegram for the kinds it handles): counted too.

The first example is written out: the shapes that found bugs (a participant's /mydata or a note
in a group chat, a command in a photo caption) and forged alert buttons.
"""

from __future__ import annotations

import dataclasses
import os
import string
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.clock import ManualClock
from bot.config import Settings, load_settings
from bot.db.engine import make_engine, make_sessionmaker
from bot.sandbox.botapi import FakeBotAPI, RateLimits
from tests.chaos.conftest import report
from tests.support.databases import create_postgres_database, create_sqlite_database
from tests.support.inproc import InProcessBot, add_participant, add_staff, inproc_settings

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600),
              pytest.mark.filterwarnings("ignore:Detected unknown update type:RuntimeWarning")]

REPO = Path(__file__).resolve().parents[2]
P1, P2, DR_A, DR_B, STRANGER = 7001, 7002, 7101, 7102, 7201
SECRETS = {P1: ("P-ZEBRA-7731", "Rosalind"), P2: ("P-OCELOT-4410", "Bartholomew")}
# Where each participant's data may appear: their own chat and their own clinician's.
ALLOWED_CHATS = {P1: {P1, DR_A}, P2: {P2, DR_B}}
UPDATES_PER_EXAMPLE = 50
# 10,000 updates in all: 6,000 on SQLite and 4,000 on PostgreSQL (the suite's time budget).
EXAMPLES = {"sqlite": 120, "postgres": 80}
if os.environ.get("IOPBOT_FUZZ_EXAMPLES"):
    EXAMPLES = dict.fromkeys(EXAMPLES, int(os.environ["IOPBOT_FUZZ_EXAMPLES"]))

COMMANDS = ["/start", "/help", "/settings", "/pause", "/resume", "/stop", "/mydata", "/checkin", "/sessions",
            "/learn", "/skills", "/favorites", "/plan", "/safetyplan", "/caseload", "/alerts", "/digest",
            "/trends", "/nonsense", "/start@iopbot_test_bot", "/"]
RISKY = ["i want to kill myself", "I have the pills here and I'm done", "jk im fine", "i relapsed last night",
         "me quiero morir", "this traffic is killing me", "I used to cut, 200 days clean"]
CALLBACK_PATTERNS = ["esc:ack:{}", "esc:contacted:{}", "esc:false:{}", "esc:reassign:{}", "esc:to:{}:{}",
                     "esc:out:{}:safe", "esc:out:{}:{}", "esc:nskip:{}", "stz:{}", "sset:tz",
                     "att:no:{}", "att:yes:{}", "att:skip:{}", "att:r:{}:sick", "stop:yes", "stop:no",
                     "fl:{}:{}:0", "fl:{}", "tz:{}", "ob:{}", "c:{}", "set:{}"]


# --- strategies ------------------------------------------------------------------------------

user_ids = st.one_of(st.sampled_from([P1, P2, DR_A, DR_B, STRANGER]), st.integers(1, 2**40))
update_ids = st.one_of(st.integers(1, 60), st.integers(10_000, 2**31))  # small range: replays
texts = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=string.printable, max_size=300),
    st.tuples(st.sampled_from(COMMANDS), st.text(max_size=30)).map(lambda t: f"{t[0]} {t[1]}".rstrip()),
    st.sampled_from(COMMANDS),
    st.sampled_from(RISKY),
    st.just(""),
    st.integers(4097, 8000).map(lambda n: ("x" * n)),  # over Telegram's 4,096
    st.text(min_size=1, max_size=5).map(lambda t: t * 1000),
)
callback_data = st.one_of(
    st.text(max_size=64),
    st.tuples(st.sampled_from(CALLBACK_PATTERNS), st.integers(-5, 10**12), st.integers(-5, 10**6))
      .map(lambda t: t[0].format(t[1], t[2])[:64]),
)


def user(uid: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": st.just(uid), "is_bot": st.booleans().map(lambda b: b and uid > 10**9),
         "first_name": st.text(max_size=20)},
        optional={"language_code": st.sampled_from(["en", "es", "de", "", "zz-ZZ"]), "username": st.text(max_size=10)})


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    uid = draw(user_ids)
    kind = draw(st.sampled_from(["private"] * 6 + ["group", "supergroup", "channel"]))
    # A private chat's id is its user's id (Telegram's rule); groups have negative ids.
    chat: dict[str, Any] = {"id": uid if kind == "private" else -draw(st.integers(1, 10**12)), "type": kind}
    if kind != "private":
        chat["title"] = draw(st.text(max_size=20))
    message: dict[str, Any] = {"message_id": draw(st.integers(1, 2**31)), "date": draw(st.integers(0, 2**31)),
                               "chat": chat}
    if kind != "channel" or draw(st.booleans()):
        message["from"] = draw(user(uid))
    body = draw(st.sampled_from(["text", "text", "text", "caption", "sticker", "none", "entities"]))
    if body in ("text", "entities"):
        message["text"] = draw(texts)
        if body == "entities":
            message["entities"] = [{"type": "bot_command", "offset": draw(st.integers(-2, 10)),
                                    "length": draw(st.integers(0, 40))}]
    elif body == "caption":
        message["caption"] = draw(texts)
        message["photo"] = [{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}]
    elif body == "sticker":
        message["sticker"] = {"file_id": "s", "file_unique_id": "u", "type": "regular", "width": 1, "height": 1,
                              "is_animated": False, "is_video": False}
    # Missing fields: sometimes drop a required one (aiogram refuses it) or an optional one.
    # ("from" is never dropped from a private chat's message: Telegram always sends it there.)
    drop = draw(st.sets(st.sampled_from(["chat", "date", "text", "message_id"]), max_size=1)) \
        if draw(st.integers(0, 9)) == 0 else set()
    return {k: v for k, v in message.items() if k not in drop}


@st.composite
def callback_queries(draw: st.DrawFn) -> dict[str, Any]:
    uid = draw(user_ids)
    query: dict[str, Any] = {"id": draw(st.text(min_size=1, max_size=12)), "from": draw(user(uid)),
                             "chat_instance": draw(st.text(max_size=8))}
    if draw(st.booleans()):
        query["data"] = draw(callback_data)
    if draw(st.booleans()):
        query["message"] = {"message_id": draw(st.integers(1, 10**6)), "date": draw(st.sampled_from([0, 1700000000])),
                            "chat": {"id": uid, "type": "private"}}
    return query


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["message"] * 8 + ["edited_message", "channel_post", "callback_query",
                                                   "callback_query", "my_chat_member", "unknown", "empty"]))
    update: dict[str, Any] = {"update_id": draw(update_ids)}
    if kind in ("message", "edited_message", "channel_post"):
        update[kind] = draw(messages())
    elif kind == "callback_query":
        update[kind] = draw(callback_queries())
    elif kind == "my_chat_member":
        uid = draw(user_ids)
        member = {"user": {"id": 123456789, "is_bot": True, "first_name": "bot"}, "status": "kicked", "until_date": 0}
        update[kind] = {"chat": {"id": uid, "type": "private"}, "from": draw(user(uid)), "date": 0,
                        "old_chat_member": {**member, "status": "member"}, "new_chat_member": member}
    elif kind == "unknown":
        name = draw(st.sampled_from(["some_future_update", "business_message", "poll", "message_reaction",
                                     "chat_boost", "purchased_paid_media"]))
        update[name] = draw(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8)),
                                            max_size=3))
    return update


# --- the bot under test ------------------------------------------------------------------------


@dataclass
class Fuzzed:
    bot: InProcessBot
    api: FakeBotAPI
    seen: dict[int, int] = field(default_factory=dict)  # chat id -> messages it holds
    checked_seq: int = 0  # the request log is checked up to here
    counts: Counter[str] = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
async def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fuzzed]:
    if request.param == "postgres":
        url = create_postgres_database()
    else:
        url = create_sqlite_database(tmp_path_factory.mktemp("fuzz"))
    now = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        dr_a = await add_staff(session, "dr-fuzz-a", DR_A, now)
        dr_b = await add_staff(session, "dr-fuzz-b", DR_B, now)
        await add_participant(session, SECRETS[P1][0], dr_a, P1, now)
        await add_participant(session, SECRETS[P2][0], dr_b, P2, now)
        await session.commit()
    await engine.dispose()
    api = FakeBotAPI(rate_limits=RateLimits(enabled=False))
    await api.start()
    base: Settings = load_settings(REPO / "config.toml", env={"BOT_TOKEN": "42:TEST"})
    # The semantic layer reads every generated text on PostgreSQL (its tokenizer and encoder meet
    # any Unicode, empty and 8,000-character texts there); on SQLite the rules alone, so the larger
    # half of the run measures the dispatcher, not 6,000 sentence encodings.
    semantic = dataclasses.replace(base.semantic, enabled=request.param == "postgres")
    bot = await InProcessBot.start(inproc_settings(base, api, url, semantic=semantic), api, ManualClock(now))
    for uid, (_, word) in SECRETS.items():  # each participant's own words, stored as a note
        await bot.say(uid, f"My sister {word} visited on Tuesday")
    await bot.say(P1, "i want to kill myself")  # an open escalation, so alert buttons mean something
    await bot.tick()
    state = Fuzzed(bot, api)
    yield state
    report(f"Hypothesis: generated updates into the dispatcher ({request.param})", {
        "updates generated": state.counts["generated"],
        "handled by the bot": state.counts["fed"],
        "refused by aiogram's Update model (never reach the bot)": state.counts["invalid"],
        "of kinds aiogram does not know (skipped with a warning)": state.counts["unknown_kind"],
        "unhandled exceptions from the bot": state.counts["exceptions"],
        "messages sent by the bot": sum(len(api.chat(c)["messages"]) for c in state.seen),
        "replies carrying another person's data": len(state.leaks),
    })
    await bot.close()
    await api.stop()


def _check_chats(state: Fuzzed) -> None:
    """Check what the bot sent or edited since the last check (the request log says where)."""
    fresh = [r for r in state.api._requests if r.seq > state.checked_seq]
    if fresh:
        state.checked_seq = fresh[-1].seq
    for chat_id in {r.chat_id for r in fresh if r.chat_id is not None and r.outcome == "ok"}:
        messages = state.api.chat(chat_id)["messages"]
        for message in messages:  # all of them: an edit changes an earlier message
            parts = [message.get("text") or "", message.get("caption") or ""]
            parts += [e.get("text") or "" for e in message.get("edits", [])]
            document = message.get("document") or {}
            if document.get("file_id"):
                parts.append(state.api.file_bytes(document["file_id"]).decode("utf-8", "replace"))
            shown = "\n".join(parts)
            for owner, (alias, word) in SECRETS.items():
                if chat_id not in ALLOWED_CHATS[owner] and (alias in shown or word in shown):
                    state.leaks.append(f"chat {chat_id} got {owner}'s data: {shown[:120]!r}")
        state.seen[chat_id] = len(messages)


BATCHES = st.lists(updates(), min_size=UPDATES_PER_EXAMPLE, max_size=UPDATES_PER_EXAMPLE)
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture,
          HealthCheck.large_base_example]


async def _feed(fuzzed: Fuzzed, batch: list[dict[str, Any]]) -> None:
    """Feed a batch one update after another (concurrently, as polling does, is slower on SQLite:
    the updates then wait for each other's write lock)."""
    bot = fuzzed.bot.running.bot
    dp = fuzzed.bot.running.dispatcher
    for raw in batch:
        fuzzed.counts["generated"] += 1
        try:
            update = Update.model_validate(raw, context={"bot": bot})
        except ValidationError:
            fuzzed.counts["invalid"] += 1
            continue
        fuzzed.counts["fed"] += 1
        try:
            update.event_type  # noqa: B018 - aiogram skips a kind it has no event type for (with a warning)
        except UpdateTypeLookupError:
            fuzzed.counts["unknown_kind"] += 1
        try:
            await dp.feed_update(bot, update)
        except Exception as exc:
            fuzzed.counts["exceptions"] += 1
            raise AssertionError(f"update {raw!r:.400} raised {type(exc).__name__}: {exc}") from exc
    await fuzzed.bot.tick()
    _check_chats(fuzzed)
    assert not fuzzed.leaks, fuzzed.leaks[:5]


def _msg(update_id: int, user_id: int, text: str, *, chat: dict[str, Any] | None = None,
         caption: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"message_id": update_id, "date": 0, "chat": chat or {"id": user_id, "type": "private"},
                            "from": {"id": user_id, "is_bot": False, "first_name": "Sam"}}
    if caption:
        body.update(caption=text, photo=[{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}])
    else:
        body["text"] = text
    return {"update_id": update_id, "message": body}


def _press(update_id: int, user_id: int, data: str) -> dict[str, Any]:
    return {"update_id": update_id, "callback_query": {"id": f"q{update_id}", "chat_instance": "c", "data": data,
                                                        "from": {"id": user_id, "is_bot": False, "first_name": "S"}}}


GROUP = {"id": -1001234, "type": "group", "title": "a group"}
KNOWN_SHAPES = [
    _msg(900_001, P1, "/mydata", chat=GROUP),  # their export would go to the whole group
    _msg(900_002, P1, "i want to kill myself", chat=GROUP),
    _msg(900_003, DR_A, "/caseload", chat=GROUP),
    _msg(900_004, DR_A, "/alerts", chat=GROUP),
    _msg(900_005, P2, "/plan", caption=True),  # a command in a caption: the handler read message.text
    _msg(900_006, P2, "/mydata", caption=True),
    _press(900_007, DR_B, "esc:ack:1"), _press(900_008, DR_B, "esc:reassign:1"), _press(900_009, DR_B, "esc:to:1:2"),
    _press(900_010, P2, "esc:false:1"), _press(900_011, STRANGER, "esc:contacted:1"),
    _msg(900_012, DR_B, "/caseload"), _msg(900_013, DR_B, "/alerts"), _msg(900_014, P2, "/mydata"),
] + [_msg(900_100 + i, STRANGER, "/start") for i in range(UPDATES_PER_EXAMPLE - 14)]


@pytest.mark.parametrize("fuzzed", ["sqlite"], indirect=True)
@seed(20261125)
@settings(max_examples=EXAMPLES["sqlite"], deadline=None, database=None, suppress_health_check=HEALTH)
@given(batch=BATCHES)
@example(batch=KNOWN_SHAPES)
async def test_generated_updates_raise_nothing_and_leak_nothing_sqlite(fuzzed: Fuzzed,
                                                                       batch: list[dict[str, Any]]) -> None:
    await _feed(fuzzed, batch)


@pytest.mark.parametrize("fuzzed", ["postgres"], indirect=True)
@seed(20261126)
@settings(max_examples=EXAMPLES["postgres"], deadline=None, database=None, suppress_health_check=HEALTH)
@given(batch=BATCHES)
@example(batch=KNOWN_SHAPES)
async def test_generated_updates_raise_nothing_and_leak_nothing_postgres(fuzzed: Fuzzed,
                                                                         batch: list[dict[str, Any]]) -> None:
    await _feed(fuzzed, batch)
