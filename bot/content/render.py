"""Markdown subset -> Telegram HTML, split into messages Telegram accepts.

Supported (content/FORMAT.md lists it for authors): paragraphs separated by a blank line, soft-wrapped
lines joined with a space, a hard line break with a trailing backslash or two spaces, `**bold**`,
`*italic*` / `_italic_`, `[label](https://link)`, `- bullet` and `1. numbered` lines, `# heading`
lines (shown bold). Everything else is text, and every `&`, `<`, `>` is escaped, so an author can
never produce HTML that Telegram rejects.

The text is parsed into spans that each carry their own formatting, and HTML is produced per span.
Splitting therefore happens between spans or inside a span's plain text, never inside a tag or an
entity, and every message is well-formed on its own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from bot.content.callbacks import NEXT_VALUE, SAMPLE_RUN_ID, SKIP_VALUE, step_callback
from bot.content.model import Exercise, Snippet, Step, StepKind

# Telegram allows 1-4096 characters after entity parsing; it counts UTF-16 code units, so an
# emoji outside the BMP counts twice. We measure the same way.
TELEGRAM_TEXT_LIMIT = 4096
BULLET = "• "
ELLIPSIS = "…"


@dataclass(frozen=True)
class Span:
    """A run of text with one formatting; the unit of rendering and of splitting."""

    text: str
    bold: bool = False
    italic: bool = False
    href: str | None = None

    def same_style(self, other: Span) -> bool:
        return (self.bold, self.italic, self.href) == (other.bold, other.italic, other.href)


Line = tuple[Span, ...]  # shown on one line
Block = tuple[Line, ...]  # a paragraph: lines joined by "\n"; blocks joined by "\n\n"


class Button(NamedTuple):
    label: str
    callback_data: str


@dataclass(frozen=True)
class RenderedMessage:
    """A message as sent: Telegram HTML (parse_mode "HTML") and inline keyboard rows."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()


# --- measuring ---------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def line_len(line: Line) -> int:
    """Visible length of one line."""
    return sum(utf16_len(span.text) for span in line)


def block_len(block: Block) -> int:
    """Visible length of a paragraph, line breaks included."""
    return sum(line_len(line) for line in block) + max(len(block) - 1, 0)


def blocks_len(blocks: Sequence[Block]) -> int:
    """Visible length of a message made of `blocks` (what Telegram checks against 4096)."""
    return sum(block_len(b) for b in blocks) + 2 * max(len(blocks) - 1, 0)


def plain_text(blocks: Sequence[Block]) -> str:
    """The visible text, without formatting or link targets (used for reading-grade checks)."""
    return "\n\n".join("\n".join("".join(s.text for s in line) for line in block) for block in blocks)


# --- parsing the Markdown subset ----------------------------------------------------------------

_ESCAPABLE = frozenset("\\`*_{}[]()#+-.!>~|")
_PLAIN_RUN_RE = re.compile(r"[^\\\[*_]+")
_LINK_RE = re.compile(r"\[([^\]\n]+)\]\(\s*<?([^()\s<>]+)>?\s*\)")
_BULLET_RE = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBER_RE = re.compile(r"^\s*(\d{1,3})[.)]\s+(.*)$")
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def _is_word(ch: str) -> bool:
    return ch.isalnum()


def _can_open(text: str, i: int, marker: str) -> bool:
    after = text[i + len(marker)] if i + len(marker) < len(text) else " "
    if after.isspace():
        return False
    # An underscore inside a word (snake_case, file_name) is not emphasis.
    return not (marker == "_" and i > 0 and _is_word(text[i - 1]))


def _can_close(text: str, i: int, marker: str) -> bool:
    before = text[i - 1] if i > 0 else " "
    if before.isspace():
        return False
    end = i + len(marker)
    return not (marker == "_" and end < len(text) and _is_word(text[end]))


def _has_closer(text: str, start: int, marker: str) -> bool:
    i = text.find(marker, start)
    while i != -1:
        single_star_in_double = marker == "*" and text.startswith("**", i)
        if not single_star_in_double and _can_close(text, i, marker):
            return True
        i = text.find(marker, i + (2 if single_star_in_double else 1))
    return False


def parse_inline(
    text: str, *, bold: bool = False, italic: bool = False, href: str | None = None
) -> list[Span]:
    """Spans of one logical line. Unmatched markers stay literal text."""
    spans: list[Span] = []
    buf: list[str] = []
    italic_marker = ""

    def flush() -> None:
        if buf:
            spans.append(Span("".join(buf), bold, italic, href))
            buf.clear()

    i, n = 0, len(text)
    while i < n:
        plain = _PLAIN_RUN_RE.match(text, i)  # most text has no markers: copy it in one step
        if plain:
            buf.append(plain.group())
            i = plain.end()
            continue
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in _ESCAPABLE:
            buf.append(text[i + 1])
            i += 2
            continue
        if ch == "[" and href is None:
            m = _LINK_RE.match(text, i)
            if m:
                flush()
                spans.extend(parse_inline(m.group(1), bold=bold, italic=italic, href=m.group(2)))
                i = m.end()
                continue
        if text.startswith("**", i):
            if bold and _can_close(text, i, "**"):
                flush()
                bold = False
            elif not bold and _can_open(text, i, "**") and _has_closer(text, i + 2, "**"):
                flush()
                bold = True
            else:
                buf.append("**")
            i += 2
            continue
        if ch in "*_":
            if italic and ch == italic_marker and _can_close(text, i, ch):
                flush()
                italic = False
                i += 1
                continue
            if not italic and _can_open(text, i, ch) and _has_closer(text, i + 1, ch):
                flush()
                italic, italic_marker = True, ch
                i += 1
                continue
        buf.append(ch)
        i += 1
    flush()
    return spans


def _merge(spans: Iterable[Span]) -> Line:
    merged: list[Span] = []
    for span in spans:
        if not span.text:
            continue
        if merged and merged[-1].same_style(span):
            merged[-1] = replace(merged[-1], text=merged[-1].text + span.text)
        else:
            merged.append(span)
    return tuple(merged)


def _hard_break(raw: str) -> tuple[str, bool]:
    if raw.endswith("\\") and not raw.endswith("\\\\"):
        return raw[:-1].rstrip(), True
    return raw.rstrip(), raw.endswith("  ")


@dataclass
class _ShownLine:
    prefix: str  # bullet or number, shown as typed
    text: str  # still Markdown
    heading: bool = False


def _paragraph_lines(raw_lines: list[str]) -> Block:
    shown: list[_ShownLine] = []
    keep_separate = True  # the next plain line starts a new shown line rather than continuing one
    for raw in raw_lines:
        text, hard = _hard_break(raw)
        if m := _BULLET_RE.match(text):
            shown.append(_ShownLine(BULLET, m.group(1).strip()))
        elif m := _NUMBER_RE.match(text):
            shown.append(_ShownLine(f"{m.group(1)}. ", m.group(2).strip()))
        elif m := _HEADING_RE.match(text):
            shown.append(_ShownLine("", m.group(1), heading=True))
            hard = True  # a heading is always a line of its own
        elif shown and not keep_separate:
            shown[-1].text = f"{shown[-1].text} {text.strip()}"  # soft wrap, as in Markdown
        else:
            shown.append(_ShownLine("", text.strip()))
        keep_separate = hard
    lines = [_merge([Span(s.prefix), *parse_inline(s.text, bold=s.heading)]) for s in shown]
    return tuple(line for line in lines if line)


def parse_markdown(markdown: str) -> list[Block]:
    """The blocks (paragraphs) of an authored text."""
    blocks: list[Block] = []
    para: list[str] = []
    for raw in markdown.split("\n"):
        if raw.strip():
            para.append(raw)
        elif para:
            blocks.append(_paragraph_lines(para))
            para = []
    if para:
        blocks.append(_paragraph_lines(para))
    return [b for b in blocks if b]


def markdown_links(markdown: str) -> list[tuple[int, str]]:
    """(0-based line offset, target) of every link, for the validator."""
    return [(n, m.group(2)) for n, line in enumerate(markdown.split("\n")) for m in _LINK_RE.finditer(line)]


# --- HTML ---------------------------------------------------------------------------------------


def escape_text(text: str) -> str:
    """Escape for Telegram HTML text. '&' first, so entities we add are not escaped again."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(text: str) -> str:
    """Escape for a double-quoted attribute value (link targets)."""
    return escape_text(text).replace('"', "&quot;")


def span_html(span: Span) -> str:
    """One span as Telegram HTML; every span opens and closes its own tags."""
    html = escape_text(span.text)
    if span.href is not None:
        html = f'<a href="{escape_attr(span.href)}">{html}</a>'
    if span.italic:
        html = f"<i>{html}</i>"
    if span.bold:
        html = f"<b>{html}</b>"
    return html


def blocks_html(blocks: Sequence[Block]) -> str:
    """The HTML text of a message made of `blocks`."""
    return "\n\n".join("\n".join("".join(span_html(s) for s in line) for line in block) for block in blocks)


# --- splitting ----------------------------------------------------------------------------------


def _prefix_fitting(text: str, room: int) -> int:
    """The largest k with utf16_len(text[:k]) <= room."""
    used = 0
    for k, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > room:
            return k
    return len(text)


def _safe_cut(text: str, k: int) -> int:
    # Do not separate a character from a following accent, variation selector or emoji joiner.
    while 0 < k < len(text) and (
        unicodedata.combining(text[k]) or text[k] in "\u200d\ufe0f\ufe0e" or text[k - 1] == "\u200d"
    ):
        k -= 1
    return k if k > 0 else 1


def split_line(line: Line, limit: int) -> list[Line]:
    """Cut one over-long line into lines of at most `limit`, at spaces where possible."""
    out: list[Line] = []
    current: list[Span] = []
    used = 0
    pending = list(line)
    while pending:
        span = pending.pop(0)
        room = limit - used
        if utf16_len(span.text) <= room:
            current.append(span)
            used += utf16_len(span.text)
            continue
        k = _prefix_fitting(span.text, room)
        space = span.text.rfind(" ", 0, k + 1)
        if space > 0:
            cut_head, cut_tail = span.text[:space].rstrip(), span.text[space:].lstrip()
        elif current:
            # No space in reach: end this line at the span boundary and retry with a full line.
            out.append(_merge(current))
            current, used = [], 0
            pending.insert(0, span)
            continue
        else:
            k = _safe_cut(span.text, k)
            cut_head, cut_tail = span.text[:k], span.text[k:]
        if cut_head:
            current.append(replace(span, text=cut_head))
        out.append(_merge(current))
        current, used = [], 0
        if cut_tail:
            pending.insert(0, replace(span, text=cut_tail))
    if current:
        out.append(_merge(current))
    return [ln for ln in out if ln]


def split_block(block: Block, limit: int) -> list[Block]:
    """Cut one over-long paragraph into paragraphs of at most `limit`: at lines, then at spaces."""
    lines: list[Line] = []
    for line in block:
        lines.extend(split_line(line, limit) if line_len(line) > limit else [line])
    out: list[Block] = []
    current: list[Line] = []
    used = 0
    for line in lines:
        add = line_len(line) + (1 if current else 0)
        if current and used + add > limit:
            out.append(tuple(current))
            current, used = [], 0
            add = line_len(line)
        current.append(line)
        used += add
    if current:
        out.append(tuple(current))
    return out


def pack_messages(blocks: Sequence[Block], limit: int = TELEGRAM_TEXT_LIMIT) -> list[list[Block]]:
    """Group blocks into messages of at most `limit`, breaking only between paragraphs when possible."""
    pieces: list[Block] = []
    for block in blocks:
        pieces.extend(split_block(block, limit) if block_len(block) > limit else [block])
    messages: list[list[Block]] = []
    current: list[Block] = []
    used = 0
    for piece in pieces:
        add = block_len(piece) + (2 if current else 0)
        if current and used + add > limit:
            messages.append(current)
            current, used = [], 0
            add = block_len(piece)
        current.append(piece)
        used += add
    if current:
        messages.append(current)
    return messages


_UI_HTML_RE = re.compile(r'<(/?)([bi])>|<a href="([^"]*)">|(</a>)|&(lt|gt|amp|quot);|([^<&]+|[<&])')
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def html_line(html: str) -> Line:
    """Spans of one line of the bot's own Telegram HTML (UI texts: <b>, <i>, <a href>, entities).

    The inverse of `span_html` for what ui.toml produces, so that composed texts can be split
    with `pack_messages` like authored ones. Anything else is kept as literal text."""
    spans: list[Span] = []
    bold = italic = False
    href: str | None = None
    for m in _UI_HTML_RE.finditer(html):
        closing, tag, link, link_end, entity, text = m.groups()
        if tag:
            if tag == "b":
                bold = not closing
            else:
                italic = not closing
        elif link is not None:
            href = link.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        elif link_end:
            href = None
        else:
            spans.append(Span(_ENTITIES[entity] if entity else text, bold, italic, href))
    return _merge(spans)


def pack_html(paragraphs: Sequence[str], limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Messages of at most `limit` from paragraphs of UI HTML (lines joined by "\n"), split between
    paragraphs where possible, then between lines, and never inside a tag or an entity."""
    blocks: list[Block] = [tuple(html_line(line) for line in p.split("\n")) for p in paragraphs if p]
    return [blocks_html(m) for m in pack_messages(blocks, limit)]


def render_markdown(
    markdown: str, *, limit: int = TELEGRAM_TEXT_LIMIT, title: str | None = None
) -> list[str]:
    """HTML messages for an authored text; `title`, if given, leads in bold."""
    blocks = parse_markdown(markdown)
    if title:
        blocks.insert(0, ((Span(title, bold=True),),))
    return [blocks_html(m) for m in pack_messages(blocks, limit)]


# --- content items ------------------------------------------------------------------------------


def snippet_blocks(snippet: Snippet) -> list[list[Block]]:
    """Blocks per authored message; the title leads the first message."""
    out: list[list[Block]] = []
    for index, message in enumerate(snippet.messages):
        blocks = parse_markdown(message.markdown)
        if index == 0:
            blocks.insert(0, ((Span(snippet.title, bold=True),),))
        out.append(blocks)
    return out


def render_snippet(snippet: Snippet, *, limit: int = TELEGRAM_TEXT_LIMIT) -> list[RenderedMessage]:
    """The messages of a snippet, in order. An authored message over the limit (the validator
    reports it) is split at paragraphs so delivery never fails."""
    return [
        RenderedMessage(blocks_html(part))
        for blocks in snippet_blocks(snippet)
        for part in pack_messages(blocks, limit)
    ]


def step_buttons(exercise: Exercise, step: Step, run_id: int = SAMPLE_RUN_ID) -> tuple[tuple[Button, ...], ...]:
    """Keyboard rows of a step, with the flow engine's callback data (bot.content.callbacks).

    Without a `run_id` the data holds the longest run id the check assumes, so its size is the
    most the step's buttons will ever need.
    """
    if step.kind is StepKind.QUESTION:
        buttons = [Button(c.label, step_callback(step.id, c.value, run_id)) for c in step.choices]
        size = max(step.columns, 1)
        return tuple(tuple(buttons[i : i + size]) for i in range(0, len(buttons), size))
    label = step.button
    if step.kind is StepKind.TEXT:
        label = label or exercise.continue_label
    if step.kind is StepKind.REFLECTION or not label:
        return ()
    value = SKIP_VALUE if step.kind is StepKind.FREE_TEXT else NEXT_VALUE
    return ((Button(label, step_callback(step.id, value, run_id)),),)


def render_step(exercise: Exercise, step: Step, *, limit: int = TELEGRAM_TEXT_LIMIT) -> RenderedMessage:
    """The one message of an exercise step with its buttons. A step is one message (its buttons
    belong to it), so text over the limit, which the validator reports, is cut with an ellipsis
    rather than failing at send time."""
    blocks = parse_markdown(step.markdown)
    if blocks_len(blocks) > limit:
        blocks = pack_messages(blocks, limit - 1)[0]
        last_block = blocks[-1]
        blocks[-1] = (*last_block[:-1], (*last_block[-1], Span(ELLIPSIS)))
    return RenderedMessage(blocks_html(blocks), step_buttons(exercise, step))


# --- plain text for previews --------------------------------------------------------------------

_LINK_HTML_RE = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)
_TAG_RE = re.compile(r"</?[bi]>")


def html_to_plain(html: str) -> str:
    """What the participant reads, without formatting; links shown as `label (target)`."""
    text = _LINK_HTML_RE.sub(lambda m: f"{m.group(2)} ({m.group(1)})", html)
    text = _TAG_RE.sub("", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
