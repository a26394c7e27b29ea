"""An update's replies as its reply row keeps them (bot/services/scheduling/replies.py): every kind
of message comes back as it was, and a cut reply of several messages resumes after the last sent."""

from bot.messaging import Document, Edit, Photo, Text, keyboard, link_row
from bot.services.scheduling.replies import decode, encode, worth_recording


def test_every_kind_of_reply_comes_back_as_it_was() -> None:
    items = [
        Text(7, "How is your mood? ¿Cómo estás? <b>1/6</b>", keyboard([[("6", "f:1:mood:6"), ("7", "f:1:mood:7")]])),
        Text(7, "Call or text 988 now.", None, urgent=True),
        Edit(7, 42, "Saved.", link_row("Join", "https://meet.example/abc")),
        Photo(8, "trend.png", b"\x89PNG\r\n\x1a\n\x00\xff", "30 days"),
        Document(8, "export.csv", "alias,mood\nP-1,6\n".encode(), ""),
    ]
    assert decode(encode(items)) == items


def test_progress_is_recorded_only_where_a_repeat_could_follow() -> None:
    text, edit = Text(1, "a"), Edit(1, 2, "b")
    assert worth_recording([text, text], 1)  # the second would repeat the first after a crash
    assert not worth_recording([text, edit], 1)  # only an edit after it: repeating that changes nothing
    assert not worth_recording([edit, text], 1)  # an edit sent: repeating it is harmless
    assert not worth_recording([text, text], 2)  # the last one
