"""Discussion prompts for cohort group chats: `content/<locale>/group_prompts/<id>.md`, loaded and checked.

One file is one prompt in one language: a TOML front matter between two `+++` lines (id, order,
author, clinical_reviewer, reviewed_on, version, status), then the prompt itself, a few short
lines the bot posts in the group. The bot posts them in order (`order`, then id), one per day or
week (`[groups] prompt_every`), and starts again after the last. A translation has the same file
name; a prompt without one is posted in English. Drafts are not posted. Every problem is reported
as `file:line: severity: message` by `iopbot content check`. The format: content/FORMAT.md,
"Group discussion prompts".
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from bot.content.problems import Problem, ProblemSink, Severity
from bot.content.readability import reading_grade

FOLDER = "group_prompts"
FALLBACK_LOCALE = "en"
MAX_TEXT_CHARS = 1200
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
_KEYS = frozenset({"id", "order", "author", "clinical_reviewer", "reviewed_on", "version", "status"})
_REQUIRED = ("id", "author", "version", "status")


@dataclass(frozen=True)
class GroupPrompt:
    id: str
    locale: str
    order: int
    text: str
    reviewed: bool


def _parse(path: Path, locale: str, sink: ProblemSink) -> GroupPrompt | None:
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        sink.error(1, "the file is not UTF-8 text: save it as UTF-8 in your editor")
        return None
    lines = raw.splitlines()
    if not lines or lines[0].strip() != "+++":
        sink.error(1, "a prompt starts with a front matter block between two lines of +++ (see content/FORMAT.md)")
        return None
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "+++")
    except StopIteration:
        sink.error(1, "the front matter has no closing +++ line")
        return None
    try:
        meta = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        sink.error(1 + (int(match.group(1)) if match else 1), f"the front matter is not valid TOML: {exc}")
        return None
    for key in sorted(set(meta) - _KEYS):
        sink.error(2, f"unknown key {key!r} in the front matter; allowed: {', '.join(sorted(_KEYS))}")
    for key in _REQUIRED:
        if key not in meta:
            sink.error(2, f"the front matter needs {key} = ...")
    prompt_id, status = meta.get("id"), meta.get("status")
    if prompt_id is not None and (not isinstance(prompt_id, str) or not _ID.match(prompt_id)):
        sink.error(2, f"id must be lowercase letters, digits, - and _, like \"what-helps\", not {prompt_id!r}")
    elif prompt_id is not None and prompt_id != path.stem:
        sink.error(2, f"id {prompt_id!r} must match the file name ({path.stem}.md)")
    if status not in (None, "draft", "reviewed"):
        sink.error(2, f"status must be \"draft\" or \"reviewed\", not {status!r}")
    order = meta.get("order", 0)
    if not isinstance(order, int) or isinstance(order, bool) or not 0 <= order <= 9999:
        sink.error(2, f"order must be a whole number from 0 to 9999, not {order!r}")
        order = 0
    if status == "reviewed":
        for key in ("clinical_reviewer", "reviewed_on"):
            if key not in meta:
                sink.error(2, f"a reviewed prompt names its {key}; or set status = \"draft\"")
        if "reviewed_on" in meta and not isinstance(meta["reviewed_on"], date):
            sink.error(2, "reviewed_on must be a date like 2026-11-25 (no quotes)")
    elif status == "draft":
        sink.warning(2, "a draft: not posted in groups until status = \"reviewed\"")
    text = "\n".join(lines[end + 1:]).strip()
    body_line = end + 2
    if not text:
        sink.error(body_line, "the prompt has no text after the front matter")
    elif len(text) > MAX_TEXT_CHARS:
        sink.error(body_line, f"the prompt is {len(text)} characters; keep it under {MAX_TEXT_CHARS} "
                   "(a few short lines)")
    elif (grade := reading_grade(text, locale)) is not None and grade.grade > 9:
        sink.warning(body_line, f"reads at about grade {grade.grade:.0f}; aim for 8 or lower (shorter "
                     "sentences and words)")
    if sink.has_errors:
        return None
    return GroupPrompt(str(prompt_id), locale, int(order), text, status == "reviewed")


def load_group_prompts(content_dir: Path) -> tuple[dict[str, list[GroupPrompt]], list[Problem]]:
    """Every locale's prompts in posting order, and every problem found (file:line)."""
    found: dict[str, list[GroupPrompt]] = {}
    problems: list[Problem] = []
    for folder in sorted(content_dir.glob(f"*/{FOLDER}")):
        locale = folder.parent.name
        for path in sorted(folder.iterdir()):
            sink = ProblemSink(path)
            if path.suffix != ".md":
                sink.warning(1, "only .md files are prompts; this one is ignored")
            else:
                prompt = _parse(path, locale, sink)
                if prompt is not None:
                    found.setdefault(locale, []).append(prompt)
            problems += sink.problems
    english = {p.id for p in found.get(FALLBACK_LOCALE, [])}
    for locale, prompts in found.items():
        prompts.sort(key=lambda p: (p.order, p.id))
        for prompt in prompts:
            if locale != FALLBACK_LOCALE and prompt.id not in english:
                problems.append(Problem(content_dir / locale / FOLDER / f"{prompt.id}.md", 1, Severity.ERROR,
                                        f"there is no English {prompt.id}.md: every prompt needs the English "
                                        "original (the posting order follows it)"))
    for prompt in found.get(FALLBACK_LOCALE, []):
        for locale in found:
            if locale != FALLBACK_LOCALE and prompt.id not in {p.id for p in found[locale]}:
                problems.append(Problem(content_dir / locale / FOLDER / f"{prompt.id}.md", 1,
                                        Severity.WARNING, f"no {locale} translation of {prompt.id}: groups in "
                                        f"{locale} get the English text"))
    return found, problems


def prompt_for(prompts: dict[str, list[GroupPrompt]], locale: str, index: int) -> GroupPrompt | None:
    """The `index`-th prompt to post (counting from 0, starting again after the last) in `locale`,
    by the English order and ids; the English text where the translation is missing. Drafts are skipped."""
    english = [p for p in prompts.get(FALLBACK_LOCALE, []) if p.reviewed]
    if not english:
        return None
    chosen = english[index % len(english)]
    local = {p.id: p for p in prompts.get(locale, []) if p.reviewed}
    return local.get(chosen.id, chosen)
