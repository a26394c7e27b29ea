"""Markdown subset -> Telegram HTML: escaping, formatting, splitting under 4096, buttons."""

from __future__ import annotations

import itertools
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.content.callbacks import item_callback, parse_item_callback, step_callback
from bot.content.model import (
    Choice,
    ContentMeta,
    Exercise,
    Message,
    Snippet,
    Status,
    Step,
    StepKind,
    Topic,
    Track,
)
from bot.content.render import (
    TELEGRAM_TEXT_LIMIT,
    Button,
    html_line,
    html_to_plain,
    pack_html,
    render_markdown,
    render_snippet,
    render_step,
    utf16_len,
)


def meta(item_id: str = "item", title: str = "Title") -> ContentMeta:
    return ContentMeta(
        id=item_id, locale="en", path=Path(f"{item_id}.md"), title=title, topic=Topic.COPING,
        tracks=(Track.MENTAL_HEALTH,), author="A", clinical_reviewer="R", reviewed_on=date(2026, 1, 1),
        version="1", status=Status.REVIEWED,
    )  # fmt: skip


def html(markdown: str) -> str:
    (out,) = render_markdown(markdown)
    return out


class _Checker(HTMLParser):
    """Fails on anything Telegram's HTML parser would reject: unknown or unbalanced tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in {"b", "i", "a"}, tag
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def assert_well_formed(text: str) -> None:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == []
    # Every '&' starts one of the entities we emit: none was cut in half.
    assert all(re.match(r"&(amp|lt|gt|quot);", text[m.start() :]) for m in re.finditer("&", text)), text
    assert "<" not in re.sub(r'</?(b|i)>|<a href="[^"<>]*">|</a>', "", text)


def visible_len(text: str) -> int:
    return utf16_len(re.sub(r"<[^>]+>", "", text).replace("&lt;", "<").replace("&gt;", ">")
                     .replace("&quot;", '"').replace("&amp;", "&"))  # fmt: skip


# --- escaping and formatting --------------------------------------------------------------------


def test_every_html_special_character_is_escaped() -> None:
    out = html("Tom & Jerry <b>not bold</b> 5 > 3 \"quoted\" 'single' &amp;")
    assert out == "Tom &amp; Jerry &lt;b&gt;not bold&lt;/b&gt; 5 &gt; 3 \"quoted\" 'single' &amp;amp;"
    assert_well_formed(out)


def test_link_target_and_label_are_escaped() -> None:
    out = html('[Q&A <here>](https://example.org/?a=1&b="2")')
    assert out == '<a href="https://example.org/?a=1&amp;b=&quot;2&quot;">Q&amp;A &lt;here&gt;</a>'
    assert_well_formed(out)


def test_bold_italic_links_and_lists() -> None:
    out = html(
        "**Bold** and *italic* and _also italic_ and [a link](https://988lifeline.org).\n"
        "- first\n- second with **bold**\n1. one\n2. two"
    )
    assert out == (
        "<b>Bold</b> and <i>italic</i> and <i>also italic</i> and "
        '<a href="https://988lifeline.org">a link</a>.\n'
        "• first\n• second with <b>bold</b>\n1. one\n2. two"
    )


def test_soft_wrap_paragraphs_and_hard_breaks() -> None:
    out = html("one\ntwo\n\nthree\\\nfour  \nfive\n# Heading")
    assert out == "one two\n\nthree\nfour\nfive\n<b>Heading</b>"


def test_unmatched_markers_and_snake_case_stay_literal() -> None:
    assert html("5 * 3 = 15 and file_name_here and **not closed") == (
        "5 * 3 = 15 and file_name_here and **not closed"
    )
    assert html(r"\*not italic\*") == "*not italic*"


def test_formatting_inside_a_link_and_bold_italic() -> None:
    assert html("***both***") == "<b><i>both</i></b>"
    assert html("**[bold link](https://x.org)**") == '<b><a href="https://x.org">bold link</a></b>'


def test_html_to_plain_round_trip() -> None:
    text = html('**Call** <988> & [chat](https://988lifeline.org "x")')
    assert html_to_plain(html("**Call** 988 & [chat](https://988lifeline.org)")) == (
        "Call 988 & chat (https://988lifeline.org)"
    )
    assert "&lt;988&gt;" in text


# --- splitting ----------------------------------------------------------------------------------


def test_long_text_splits_at_paragraph_boundaries() -> None:
    paragraphs = [f"Paragraph {n}: " + "calm words & more " * 20 for n in range(40)]  # ~15 000 chars
    messages = render_markdown("\n\n".join(paragraphs))
    assert len(messages) > 1
    rebuilt: list[str] = []
    for message in messages:
        assert visible_len(message) <= TELEGRAM_TEXT_LIMIT and len(message) <= TELEGRAM_TEXT_LIMIT + 2000
        assert_well_formed(message)
        rebuilt.extend(message.split("\n\n"))
    # Each paragraph is whole in exactly one message, in order.
    assert [html_to_plain(p) for p in rebuilt] == [p.strip() for p in paragraphs]
    # Packed greedily: each message but the last would overflow with the next paragraph.
    for current, following in itertools.pairwise(messages):
        first_next = following.split("\n\n")[0]
        assert visible_len(current) + 2 + visible_len(first_next) > TELEGRAM_TEXT_LIMIT


def test_one_over_long_paragraph_is_hard_split_without_breaking_tags_or_entities() -> None:
    paragraph = " ".join(["**bold & brave** <words> [link](https://x.org/?a&b) *and italics*"] * 300)
    messages = render_markdown(paragraph)  # about 11 000 characters in one paragraph
    assert len(messages) == 3
    for message in messages:
        assert visible_len(message) <= TELEGRAM_TEXT_LIMIT
        assert_well_formed(message)
    plain = " ".join(html_to_plain(m) for m in messages)
    assert plain.count("bold & brave") == 300


def test_a_word_longer_than_a_message_is_cut_safely() -> None:
    messages = render_markdown("&" * 5000 + " end")
    assert [visible_len(m) for m in messages] == [4096, 904 + 4]
    for message in messages:
        assert_well_formed(message)


def test_limit_counts_utf16_like_telegram() -> None:
    messages = render_markdown("🙂" * 3000)  # 6000 UTF-16 units
    assert [visible_len(m) for m in messages] == [4096, 1904]
    assert "".join(messages) == "🙂" * 3000


def test_emoji_with_joiner_is_not_split() -> None:
    family = "👩\u200d👩\u200d👧"
    text = "a" * 4094 + family
    first, second = render_markdown(text)
    assert first == "a" * 4094 and second == family


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from([*"ab &<>\"'*_[]()\\#-\n🙂é", "**", " ", "](https://x.org)", "\n\n"]), max_size=400
    ),
    st.integers(min_value=20, max_value=200),
)
def test_any_text_renders_to_well_formed_messages_under_the_limit(parts: list[str], limit: int) -> None:
    for message in render_markdown("".join(parts), limit=limit):
        assert visible_len(message) <= limit
        assert_well_formed(message)
        assert message.strip()


# --- snippets and steps -------------------------------------------------------------------------


def test_render_snippet_puts_the_title_first_and_one_message_each() -> None:
    snippet = Snippet(meta(title="Stress & you"), (Message("First <idea>.", 10), Message("Second.", 14)))
    messages = render_snippet(snippet)
    assert [m.text for m in messages] == ["<b>Stress &amp; you</b>\n\nFirst &lt;idea&gt;.", "Second."]
    assert all(m.buttons == () for m in messages)


def test_render_snippet_splits_an_over_long_message() -> None:
    long_text = "\n\n".join(["A calm sentence with some words in it."] * 300)
    messages = render_snippet(Snippet(meta(), (Message(long_text, 1),)))  # about 12 000 characters
    assert len(messages) == 3
    assert all(visible_len(m.text) <= TELEGRAM_TEXT_LIMIT for m in messages)


def exercise() -> Exercise:
    steps = (
        Step("intro", StepKind.TEXT, "Hello & welcome.", 1),
        Step("ask", StepKind.QUESTION, "Ready?", 5, key="ready", columns=2, choices=(
            Choice("Yes", "yes"), Choice("No", "no", next="bye"), Choice("Later", "later"),
        )),
        Step("wait", StepKind.PAUSE, "Breathe in.", 9, seconds=4),
        Step("skip", StepKind.PAUSE, "Breathe out.", 12, seconds=6, button="Skip"),
        Step("note", StepKind.FREE_TEXT, "What do you notice?", 15, key="notice", button="Skip"),
        Step("end", StepKind.REFLECTION, "Well done.", 18),
        Step("bye", StepKind.REFLECTION, "Okay.", 20),
    )  # fmt: skip
    return Exercise(meta("breathe"), steps, continue_label="Next")


def test_render_step_buttons_and_callback_data() -> None:
    ex = exercise()
    intro = render_step(ex, ex.steps[0])
    assert intro.text == "Hello &amp; welcome."
    assert intro.buttons == ((Button("Next", "fl:9999999999:intro:next"),),)
    ask = render_step(ex, ex.steps[1])
    assert ask.buttons == (
        (Button("Yes", "fl:9999999999:ask:yes"), Button("No", "fl:9999999999:ask:no")),
        (Button("Later", "fl:9999999999:ask:later"),),
    )
    assert render_step(ex, ex.steps[2]).buttons == ()  # a pause goes on by itself
    assert render_step(ex, ex.steps[3]).buttons == ((Button("Skip", "fl:9999999999:skip:next"),),)
    assert render_step(ex, ex.steps[4]).buttons == ((Button("Skip", "fl:9999999999:note:-"),),)  # the engine's Skip
    assert render_step(ex, ex.steps[5]).buttons == ()


def test_render_step_never_exceeds_the_limit() -> None:
    ex = exercise()
    huge = Step("huge", StepKind.TEXT, "word " * 2000, 1)
    message = render_step(ex, huge)
    assert visible_len(message.text) <= TELEGRAM_TEXT_LIMIT and message.text.endswith("…")


def test_flow_follows_choices_next_and_file_order() -> None:
    ex = exercise()
    ask = ex.steps[1]
    assert ex.next_step_id(ex.steps[0]) == "ask"
    assert ex.next_step_id(ask, "yes") == "wait"
    assert ex.next_step_id(ask, "no") == "bye"
    assert ex.next_step_id(ex.steps[5]) is None  # a reflection ends the exercise
    assert ex.next_step_id(ex.steps[6]) is None
    assert ex.successors(ask) == {"wait", "bye"}


def test_step_buttons_carry_the_flow_engines_data_and_menus_their_own() -> None:
    pytest.importorskip("aiogram")
    from bot.flows.engine import SKIP_VALUE, flow_callback, parse_flow_callback

    data = step_callback("in_1", "next", run_id=1234567890)
    assert data == flow_callback(1234567890, "in_1", "next") == "fl:1234567890:in_1:next"
    parsed = parse_flow_callback(data)
    assert parsed is not None and (parsed.run_id, parsed.step_id, parsed.value) == (1234567890, "in_1", "next")
    assert step_callback("note", SKIP_VALUE).endswith(":note:-")

    menu = item_callback("o", "paced-breathing")
    assert menu == "ci:o:paced-breathing"
    parsed_menu = parse_item_callback(menu)
    assert parsed_menu is not None and (parsed_menu.action, parsed_menu.argument) == ("o", "paced-breathing")
    assert parse_item_callback("fl:12:in_1:next") is None and parse_item_callback("ci:o") is None


# --- the bot's own composed texts (caseload, trends, digest) -------------------------------------


def test_ui_html_survives_the_round_trip_through_spans() -> None:
    text = '<b>P-1 &amp; co</b> – <i>a &lt;b&gt; tag</i> <a href="https://x.org/?a=1&amp;b=2">here</a> 5 < 6'
    (message,) = pack_html([text])
    assert message == text.replace("5 < 6", "5 &lt; 6")
    assert html_line("<b>x") == html_line("<b>x</b>")  # an unclosed tag still renders closed
    assert_well_formed(pack_html(["<b>x"])[0])


def test_composed_texts_split_between_paragraphs_then_lines_and_stay_well_formed() -> None:
    entries = [f"🚨 <b>P-{n:03d} &amp; co</b> · active\nLast check-in Mon, Mar 2: mood {n % 11}" for n in range(300)]
    messages = pack_html(["<b>Your caseload</b> (300)", *entries])
    assert len(messages) > 1
    for message in messages:
        assert visible_len(message) <= TELEGRAM_TEXT_LIMIT
        assert_well_formed(message)
        assert not message.startswith("\n") and not message.endswith("\n")
    joined = "\n\n".join(messages)
    assert all(entry in joined for entry in entries)  # no entry was cut between messages
    long_paragraph = "\n".join(f"<i>line {n}</i>" for n in range(2000))
    parts = pack_html([long_paragraph], limit=500)
    assert all(visible_len(p) <= 500 for p in parts) and "\n".join(parts) == long_paragraph
