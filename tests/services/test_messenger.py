"""The Messenger port as the core uses it, against the local Bot API: plain messages arrive as
Telegram messages (buttons, links, edits, documents, pictures), and Telegram's refusals come back
as the core's NotDelivered / Unreachable, never as aiogram's exceptions."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator

import pytest

from bot.messaging import NotDelivered, Replies, Unreachable, keyboard, link_row, say
from bot.sandbox.botapi import FakeBotAPI, Fault, RateLimits
from bot.telegram.messenger import TelegramMessenger
from tests.services.test_sender import make_bot


def tiny_png() -> bytes:
    """A 1x1 white PNG that decodes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\xff\xff"))
            + chunk(b"IEND", b""))


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = FakeBotAPI(rate_limits=RateLimits())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def messenger(api: FakeBotAPI) -> AsyncIterator[TelegramMessenger]:
    bot, sender = make_bot(api)
    yield TelegramMessenger(bot, sender)
    await bot.session.close()


async def test_a_reply_arrives_with_its_buttons_link_edit_document_and_picture(
        api: FakeBotAPI, messenger: TelegramMessenger) -> None:
    sent = await say(messenger, 21, "Your group starts at 18:00",
                     link_row("Join", "https://meet.example.org/g1") + keyboard([[("I can't come", "att:no:7")]]))
    replies = Replies()
    replies.edit(21, sent.message_id, "Your group starts at 18:30")
    replies.document(21, "mydata.json", b'{"alias": "P-1"}', caption="Your data")
    replies.photo(21, "mood.png", tiny_png(), caption="Mood, last 14 days")
    last = await replies.deliver(messenger)

    messages = api.chat(21)["messages"]
    assert [m["kind"] for m in messages] == ["text", "document", "photo"]
    first = messages[0]
    assert first["text"] == "Your group starts at 18:30" and len(first["edits"]) == 1
    buttons = [b for row in first["sent"]["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [{"text": "Join", "url": "https://meet.example.org/g1"},
                       {"text": "I can't come", "callback_data": "att:no:7"}]
    assert messages[1]["caption"] == "Your data" and api.file_bytes(messages[1]["document"]["file_id"]) == (
        b'{"alias": "P-1"}')
    picture = api.file_bytes(messages[2]["photo"]["file_id"])
    assert picture.startswith(b"\x89PNG") and messages[2]["caption"] == "Mood, last 14 days"
    assert last is not None and last.message_id == messages[2]["message_id"]
    assert replies.items == []


async def test_a_blocked_chat_is_unreachable_and_other_refusals_are_not_delivered(
        api: FakeBotAPI, messenger: TelegramMessenger) -> None:
    api.block(22, notify=False)
    with pytest.raises(Unreachable, match="Forbidden"):
        await say(messenger, 22, "hello")
    api.add_fault(Fault(method="sendMessage", kind="server_error", chat_id=23, times=10, status=500))
    with pytest.raises(NotDelivered) as refused:
        await say(messenger, 23, "hello", urgent=True)
    assert not isinstance(refused.value, Unreachable)
    assert api.chat(22)["messages"] == [] and api.chat(23)["messages"] == []


async def test_flush_sends_the_rest_when_one_reply_fails(api: FakeBotAPI, messenger: TelegramMessenger) -> None:
    # A handler's replies after its commit: one refused message does not stop the others.
    api.block(24, notify=False)
    replies = Replies()
    replies.text(24, "to a blocked chat")
    replies.text(25, "to an open chat", keyboard([[("Yes", "c:yes")]]))
    await messenger.flush(replies)
    assert [m["text"] for m in api.chat(25)["messages"]] == ["to an open chat"]
    assert replies.items == []
