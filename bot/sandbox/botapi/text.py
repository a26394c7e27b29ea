"""Text as Telegram checks it: length limits in UTF-16 code units, HTML/MarkdownV2/Markdown parsing
(the visible text, or Telegram's "can't parse entities" error), and inline keyboards."""

from __future__ import annotations

import html
import itertools
import re
from typing import Any, Final

from bot.sandbox.botapi.errors import BotAPIError, bad_request

MESSAGE_LIMIT: Final = 4096
CAPTION_LIMIT: Final = 1024
CALLBACK_DATA_LIMIT: Final = 64
_BUTTON_ACTIONS: Final = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)  # fmt: skip


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entities_error(detail: str) -> BotAPIError:
    return bad_request(f"can't parse entities: {detail}")


_HTML_TAGS: Final = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "tg-emoji", "code", "pre", "blockquote",
})  # fmt: skip
_HTML_TAG: Final = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?>")


def _html_visible(text: str) -> str:
    parts: list[str] = []
    open_tags: list[str] = []
    pos = 0
    while (lt := text.find("<", pos)) != -1:
        parts.append(text[pos:lt])
        offset = len(text[:lt].encode())
        match = _HTML_TAG.match(text, lt)
        if match is None:
            raise _entities_error(f"Unexpected end of name token at byte offset {offset}")
        closing, name = match.group(1) == "/", match.group(2).lower()
        if name not in _HTML_TAGS:
            raise _entities_error(
                f'Unsupported {"end" if closing else "start"} tag "{name}" at byte offset {offset}'
            )
        if not closing:
            open_tags.append(name)
        elif open_tags and open_tags[-1] == name:
            open_tags.pop()
        else:
            raise _entities_error(f'Unmatched end tag at byte offset {offset}, found "</{name}>"')
        pos = match.end()
    if open_tags:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"')
    parts.append(text[pos:])
    return html.unescape("".join(parts))


_MDV2_RESERVED: Final = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_MARKS: Final = ("||", "__", "*", "_", "~")  # two-character marks first


def _find_unescaped(text: str, token: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(token, i):
            return i
        else:
            i += 1
    return -1


def _markdown_v2_visible(text: str) -> str:
    out: list[str] = []
    open_marks: list[str] = []
    links = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 == len(text):
                raise _entities_error("Character '\\' at the end of the text must be escaped")
            out.append(text[i + 1])
            i += 2
        elif ch == "`":
            fence = "```" if text.startswith("```", i) else "`"
            end = _find_unescaped(text, fence, i + len(fence))
            if end == -1:
                raise _entities_error(
                    f"Can't find end of code entity at byte offset {len(text[:i].encode())}"
                )
            body = text[i + len(fence) : end]
            if fence == "```" and re.match(r"[\w+-]*\n", body):
                body = body.split("\n", 1)[1]  # the first line names the language
            out.append(re.sub(r"\\([`\\])", r"\1", body))
            i = end + len(fence)
        elif mark := next((m for m in _MDV2_MARKS if text.startswith(m, i)), None):
            if mark in open_marks:
                open_marks.remove(mark)
            else:
                open_marks.append(mark)
            i += len(mark)
        elif ch == "[":
            links += 1
            i += 1
        elif ch == "]" and links:
            links -= 1
            i += 1
            if text.startswith("(", i):
                end = _find_unescaped(text, ")", i + 1)
                if end == -1:
                    raise _entities_error("Can't find end of a URL")
                i = end + 1
        elif ch == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # a blockquote line
        elif ch in _MDV2_RESERVED:
            raise _entities_error(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")
        else:
            out.append(ch)
            i += 1
    if open_marks or links:
        raise _entities_error("Can't find end of an entity")
    return "".join(out)


def _markdown_visible(text: str) -> str:
    # Legacy Markdown is lenient; strip its marks and keep link texts.
    return re.sub(r"[*_`]", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text))


def visible_text(text: str, parse_mode: str | None) -> str:
    """The text a user would see: markup parsed (and checked) according to `parse_mode`."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _html_visible(text)
    if mode == "markdownv2":
        return _markdown_v2_visible(text)
    if mode == "markdown":
        return _markdown_visible(text)
    if mode:
        raise bad_request("unsupported parse_mode")
    return text


def checked_text(text: str, parse_mode: str | None, *, limit: int, empty: str | None, too_long: str) -> str:
    visible = visible_text(text, parse_mode).strip()  # Telegram trims before measuring
    if not visible and empty is not None:
        raise bad_request(empty)
    if utf16_len(visible) > limit:
        raise bad_request(too_long)
    return visible


def check_reply_markup(markup: Any) -> dict[str, Any]:
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:  # reply keyboards, remove_keyboard and force_reply are kept as given
        return markup
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" must be of type Array of Array')
    for button in itertools.chain.from_iterable(rows):
        if not isinstance(button, dict) or not button.get("text"):
            raise bad_request("can't parse inline keyboard button: Text must be a non-empty String")
        actions = [name for name in _BUTTON_ACTIONS if name in button]
        if not actions:
            raise bad_request(
                "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
            )
        if len(actions) > 1:
            raise bad_request(
                "can't parse inline keyboard button: exactly one of the optional fields must be used"
            )
        data = button.get("callback_data")
        if data is not None and not (
            isinstance(data, str) and 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT
        ):
            raise bad_request("BUTTON_DATA_INVALID")
        url = button.get("url")
        if url is not None and not (isinstance(url, str) and re.fullmatch(r"(?i)(https?|tg)://\S+", url)):
            raise bad_request(f"inline keyboard button URL '{url}' is invalid: Unsupported URL protocol")
    return markup
