"""Family psychoeducation: `content/<locale>/family/*.md`, short reads for support persons (how to
support recovery, how to talk about relapse, caring for yourself, what to do in a crisis).

The files have the same format as psychoeducation snippets (content/FORMAT.md) and are loaded and
checked by bot/content/family.py (also for `iopbot content check`); they are kept apart so that
participants never get them in /learn, and support persons get nothing else. The crisis numbers
are not written in the files: `{crisis_line}`, `{emergency}` and `{chat_url}` are filled from the
program's crisis settings, as in the crisis reply, so a program outside the US changes them in one
place.
"""

from __future__ import annotations

from bot.content.family import DEFAULT_LOCALE, FOLDER, FamilyLibrary, load_family
from bot.content.model import Snippet
from bot.content.render import render_snippet
from bot.context import AppContext

__all__ = ["DEFAULT_LOCALE", "FOLDER", "FamilyLibrary", "family_library", "load_family", "render_read"]


def family_library(ctx: AppContext) -> FamilyLibrary:
    """The library of the running bot (loaded once by `install_support`)."""
    return ctx.parts.get(FamilyLibrary)


def render_read(ctx: AppContext, snippet: Snippet, locale: str) -> list[str]:
    """The messages of one read (HTML), with the program's crisis numbers filled in."""
    crisis = ctx.settings.crisis_for(locale)
    values = {"{crisis_line}": crisis.call_or_text, "{emergency}": crisis.emergency_number,
              "{chat_url}": crisis.chat_url}
    out = []
    for message in render_snippet(snippet):
        text = message.text
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        out.append(text)
    return out
