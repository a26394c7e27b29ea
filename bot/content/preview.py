"""`python -m bot.content.preview ID [--locale es] [--dir content]`: show an item as a participant gets it.

Message text is shown as the participant reads it (formatting removed, links as `label (target)`),
buttons as `[ Label ]`, one keyboard row per line. Lines starting with `──` or `  ↳` are notes for
the author (message and step boundaries, where a button leads), not part of what is sent.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.content.callbacks import LEAVE_EXERCISE, item_callback
from bot.content.i18n import Texts, TextsError
from bot.content.library import Library, load_library
from bot.content.model import DEFAULT_LOCALE, ContentItem, Exercise, Step, StepKind
from bot.content.render import RenderedMessage, html_to_plain, render_snippet, render_step


def _buttons(message: RenderedMessage, show_callbacks: bool) -> list[str]:
    rows = []
    for row in message.buttons:
        cells = [f"[ {b.label} ]" + (f" ({b.callback_data})" if show_callbacks else "") for b in row]
        rows.append("  ".join(cells))
    return rows


def _body(message: RenderedMessage, html: bool) -> str:
    return message.text if html else html_to_plain(message.text)


def _step_note(exercise: Exercise, step: Step) -> str:
    kind = {
        StepKind.TEXT: "text",
        StepKind.PAUSE: f"pause: the next step comes by itself after {step.seconds} s",
        StepKind.QUESTION: "question" + (f", answer stored as '{step.key}'" if step.key else ""),
        StepKind.FREE_TEXT: f"free text: the typed answer is stored as '{step.key}'",
        StepKind.REFLECTION: "reflection: the exercise ends here",
    }[step.kind]
    return f"── step {step.id} ({kind}) ──"


def _flow_note(exercise: Exercise, step: Step) -> str | None:
    if step.kind is StepKind.REFLECTION:
        return None
    if step.kind is StepKind.QUESTION:
        parts = [f"{c.label} → {exercise.next_step_id(step, c.value) or 'end'}" for c in step.choices]
        return "  ↳ " + " · ".join(parts)
    return f"  ↳ then {exercise.next_step_id(step) or 'end'}"


def _header(item: ContentItem, requested: str) -> list[str]:
    meta = item.meta
    kind = "Exercise" if isinstance(item, Exercise) else "Snippet"
    lines = [f"{kind} {meta.id} ({meta.locale}): {meta.title}"]
    if meta.locale != requested:
        lines.append(f"(no '{requested}' translation: shown in '{meta.locale}', as the bot would)")
    week = f" · week {meta.week}" if meta.week else ""
    reviewed = meta.reviewed_on.isoformat() if meta.reviewed_on else "not yet"
    lines.append(
        f"topic {meta.topic.value} · tracks {', '.join(meta.tracks) or 'every track'}{week} · "
        f"{meta.status.value}, version {meta.version} · "
        f"reviewed by {meta.clinical_reviewer or 'nobody yet'} on {reviewed}"
    )
    return lines


def preview(
    library: Library,
    item_id: str,
    locale: str = DEFAULT_LOCALE,
    *,
    show_callbacks: bool = False,
    html: bool = False,
    stop_label: str | None = None,
) -> str:
    """The item as a participant would receive it, as plain text. Raises KeyError if it is not in
    the library (not written, has errors, or is a draft when drafts are not allowed). `stop_label`:
    the bot's Stop button under every step but a reflection (from ui.toml), when given."""
    item = library.get(item_id, locale)
    if item is None:
        raise KeyError(item_id)
    out = _header(item, locale)
    if isinstance(item, Exercise):
        for step in item.steps:
            message = render_step(item, step)
            out += ["", _step_note(item, step), _body(message, html), *_buttons(message, show_callbacks)]
            if stop_label and step.kind is not StepKind.REFLECTION:
                data = f" ({item_callback(LEAVE_EXERCISE, item.id)})" if show_callbacks else ""
                out.append(f"[ {stop_label} ]{data}")
            note = _flow_note(item, step)
            if note:
                out.append(note)
    else:
        messages = render_snippet(item)
        for number, message in enumerate(messages, start=1):
            out += ["", f"── message {number} of {len(messages)} ──", _body(message, html)]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m bot.content.preview") -> int:
    """Print the preview; returns the exit code (2 when the item cannot be shown)."""
    parser = argparse.ArgumentParser(prog=prog, description="Show a content item as a participant gets it.")
    parser.add_argument("id", help="the id of a snippet or exercise")
    parser.add_argument("--locale", default=DEFAULT_LOCALE, help="language, e.g. es (default: en)")
    parser.add_argument("--dir", type=Path, default=Path("content"), help="content folder (default: content)")
    parser.add_argument("--callbacks", action="store_true", help="show each button's callback data")
    parser.add_argument(
        "--html", action="store_true", help="show the HTML sent to Telegram instead of plain text"
    )
    args = parser.parse_args(argv)
    # Drafts are shown: authors preview before review.
    result = load_library(args.dir, allow_drafts=True, tracks=None)  # any track name: the check checks them
    try:
        stop_label: str | None = Texts.load(args.dir).get("exercise.stop", args.locale)
    except (TextsError, KeyError):  # no ui.toml there: leave the bot's own button out
        stop_label = None
    try:
        print(
            preview(result.library, args.id, args.locale, show_callbacks=args.callbacks, html=args.html,
                    stop_label=stop_label),
            end="",
        )
    except KeyError:
        related = [p for p in result.errors if p.path.stem == args.id]
        for problem in related:
            print(problem, file=sys.stderr)
        reason = "it has errors (above)" if related else f"no file has id '{args.id}'"
        print(
            f"cannot preview '{args.id}': {reason}; run python -m bot.content.check {args.dir}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
