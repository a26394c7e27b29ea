"""Checks that need a parsed item (what the participant would get) or several files at once.

Per item: message length after rendering, button callback data size, link targets, button labels
and reading grade. Across files: translations (missing, orphaned, or with a different structure).
Duplicate ids are found by the loader, which decides which file wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.content.callbacks import MAX_CALLBACK_BYTES, callback_bytes, longest_item_callback
from bot.content.model import DEFAULT_LOCALE, ContentItem, Exercise, Snippet, Step
from bot.content.problems import Problem, ProblemSink
from bot.content.readability import reading_grade
from bot.content.render import (
    TELEGRAM_TEXT_LIMIT,
    Block,
    blocks_len,
    markdown_links,
    parse_markdown,
    plain_text,
    snippet_blocks,
    step_buttons,
)

DEFAULT_GRADE_LIMIT = 8.0
SOFT_MESSAGE_LIMIT = 1000  # about two phone screens: longer usually holds more than one idea
BUTTON_LABEL_LIMIT = 40  # phones cut longer labels off
LINK_SCHEMES = ("https://", "http://", "tg://")
MIN_WORDS_TO_GRADE = 15  # a grade of a few words says nothing
STORED_NAME_LIMIT = 40  # step ids, keys and choice values (columns of flow_runs and exercise_answers)


def _check_length(
    blocks: Sequence[Block], line: int, what: str, sink: ProblemSink, *, can_split: bool
) -> None:
    size = blocks_len(blocks)
    if size > TELEGRAM_TEXT_LIMIT:
        fix = (
            "split it with a '---' line" if can_split else "shorten it or move part of it to a new text step"
        )
        sink.error(
            line,
            f"{what} is {size} characters after formatting; Telegram allows {TELEGRAM_TEXT_LIMIT}: {fix}",
        )
    elif size > SOFT_MESSAGE_LIMIT:
        sink.warning(
            line,
            f"{what} is {size} characters: that is long on a phone; keep to one idea per message "
            f"(under {SOFT_MESSAGE_LIMIT})",
        )


def _check_links(markdown: str, first_line: int, sink: ProblemSink) -> None:
    for offset, target in markdown_links(markdown):
        if not target.lower().startswith(LINK_SCHEMES):
            sink.error(
                first_line + offset,
                f"link target '{target}' is not an https:// or tg:// address: Telegram opens only those; "
                "write phone numbers and e-mail addresses as plain text (Telegram makes them tappable)",
            )


def _check_grade(texts: Sequence[tuple[int, str]], locale: str, limit: float, sink: ProblemSink) -> None:
    whole = reading_grade("\n\n".join(t for _, t in texts), locale)
    if whole is None or whole.words < MIN_WORDS_TO_GRADE or whole.grade <= limit:
        return
    graded = [
        (g.grade, line)
        for line, t in texts
        if (g := reading_grade(t, locale)) and g.words >= MIN_WORDS_TO_GRADE
    ]
    worst_line = max(graded)[1] if graded else texts[0][0]
    ease = f", reading ease {whole.reading_ease}" if whole.reading_ease is not None else ""
    sink.warning(
        worst_line,
        f"reading grade {whole.grade:.1f} ({whole.method}{ease}) is above the limit {limit:g}: use shorter "
        f"sentences and everyday words; the hardest part starts here ({whole.words} words, "
        f"{whole.words / whole.sentences:.1f} per sentence)",
    )


def _check_snippet(snippet: Snippet, sink: ProblemSink, grade_limit: float) -> None:
    texts: list[tuple[int, str]] = []
    for index, (message, blocks) in enumerate(zip(snippet.messages, snippet_blocks(snippet), strict=True)):
        _check_length(blocks, message.line, f"message {index + 1}", sink, can_split=True)
        _check_links(message.markdown, message.line, sink)
        body = blocks[1:] if index == 0 else blocks  # the title is not graded: it is not a sentence
        texts.append((message.line, plain_text(body)))
    _check_grade(texts, snippet.locale, grade_limit, sink)


def _check_buttons(exercise: Exercise, step: Step, sink: ProblemSink) -> None:
    lines = {c.value: c.line for c in step.choices}
    for row in step_buttons(exercise, step):
        for label, data in row:
            value = data.rsplit(":", 1)[-1]
            line = lines.get(value) or step.line
            size = callback_bytes(data)
            if size > MAX_CALLBACK_BYTES:
                sink.error(
                    line,
                    f"button '{label}' has callback data '{data}' of {size} bytes (with a 10-digit run "
                    f"number); Telegram allows {MAX_CALLBACK_BYTES}: shorten the step id or the value",
                )
            if len(label) > BUTTON_LABEL_LIMIT:
                sink.warning(
                    line,
                    f"button label '{label}' has {len(label)} characters: phones cut it off after about "
                    f"{BUTTON_LABEL_LIMIT}; shorten it",
                )


def _check_stored_names(step: Step, sink: ProblemSink) -> None:
    # Step ids, answer keys and choice values are stored with each run and answer.
    named = [("step id", step.id, step.line), ("key", step.key or "", step.line)]
    named += [("choice value", c.value, c.line or step.line) for c in step.choices]
    for what, name, line in named:
        if len(name) > STORED_NAME_LIMIT:
            sink.error(
                line,
                f"{what} '{name}' has {len(name)} characters; answers are stored under names of at most "
                f"{STORED_NAME_LIMIT}: shorten it",
            )


def _check_exercise(exercise: Exercise, sink: ProblemSink, grade_limit: float) -> None:
    texts: list[tuple[int, str]] = []
    for step in exercise.steps:
        _check_stored_names(step, sink)
        blocks = parse_markdown(step.markdown)
        _check_length(blocks, step.line, f"step '{step.id}'", sink, can_split=False)
        _check_links(step.markdown, step.line + 1, sink)
        _check_buttons(exercise, step, sink)
        texts.append((step.line, plain_text(blocks)))
    _check_grade(texts, exercise.locale, grade_limit, sink)


def _check_menu_button(item: ContentItem, sink: ProblemSink) -> None:
    # Menus (/learn, /skills, /favorites) carry the item id in their buttons.
    data = longest_item_callback(item.id)
    size = callback_bytes(data)
    if size > MAX_CALLBACK_BYTES:
        sink.error(
            item.meta.id_line,
            f"id '{item.id}' is too long for a menu button: its callback data '{data}' has {size} bytes; "
            f"Telegram allows {MAX_CALLBACK_BYTES}: shorten the id (before the item is live)",
        )


def check_item(item: ContentItem, *, grade_limit: float = DEFAULT_GRADE_LIMIT) -> list[Problem]:
    """Problems in what the participant would receive from `item`."""
    sink = ProblemSink(item.meta.path)
    _check_menu_button(item, sink)
    if isinstance(item, Snippet):
        _check_snippet(item, sink, grade_limit)
    else:
        _check_exercise(item, sink, grade_limit)
    return sink.problems


# --- translations -------------------------------------------------------------------------------


def _structure(exercise: Exercise) -> list[tuple[str, object]]:
    # What the flow engine and stored answers depend on; the words may differ, this may not.
    return [
        (
            step.id,
            (step.kind.value, step.next, step.key, step.seconds, [(c.value, c.next) for c in step.choices]),
        )
        for step in exercise.steps
    ]


def _compare_exercises(original: Exercise, translation: Exercise, sink: ProblemSink) -> None:
    ours, theirs = dict(_structure(translation)), dict(_structure(original))
    en_path = original.meta.path
    for step in translation.steps:
        if step.id not in theirs:
            sink.error(
                step.line,
                f"step '{step.id}' is not in the English original {en_path}: translations keep the "
                "same steps (ids, kinds, next, keys, values); only the words change",
            )
        elif ours[step.id] != theirs[step.id]:
            sink.error(
                step.line,
                f"step '{step.id}' differs from the English original {en_path} in kind, next, "
                "key, seconds or choice values: keep those the same; translate only the words",
            )
    missing = [s for s in theirs if s not in ours]
    if missing:
        sink.error(
            translation.meta.id_line,
            f"steps {', '.join(missing)} of the English original {en_path} are missing: translate them too",
        )
    elif [s for s, _ in _structure(translation)] != [s for s, _ in _structure(original)]:
        sink.error(
            translation.meta.id_line, f"the steps are in another order than in {en_path}: keep the same order"
        )


def _compare_meta(original: ContentItem, translation: ContentItem, sink: ProblemSink) -> None:
    a, b = original.meta, translation.meta
    line = b.id_line
    for name in ("topic", "tracks", "week", "order"):
        if getattr(a, name) != getattr(b, name):
            sink.warning(
                line,
                f"'{name}' differs from the English original {a.path}: translations of one id are "
                "listed together, so keep it the same",
            )
    if _version_tuple(b.version) < _version_tuple(a.version):
        sink.warning(
            line,
            f"version {b.version} is older than the English original's {a.version} ({a.path}): update "
            "the translation, then its version",
        )


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def check_translations(
    items: Mapping[str, Mapping[str, ContentItem]], locales: Sequence[str]
) -> list[Problem]:
    """Missing, orphaned and diverging translations. `items` is locale -> id -> item."""
    problems: list[Problem] = []
    originals = items.get(DEFAULT_LOCALE, {})
    for locale in locales:
        if locale == DEFAULT_LOCALE:
            continue
        translated = items.get(locale, {})
        for item_id, original in sorted(originals.items()):
            folder = original.meta.path.parent.name
            # A translation file with errors exists: its own errors say what to fix.
            file_exists = (original.meta.path.parents[2] / locale / folder / f"{item_id}.md").exists()
            if item_id not in translated and not file_exists:
                sink = ProblemSink(original.meta.path)
                sink.warning(
                    original.meta.id_line,
                    f"not translated to '{locale}': add {locale}/{folder}/{item_id}.md "
                    f"(until then {locale} participants get the English text)",
                )
                problems.extend(sink.problems)
        for item_id, translation in sorted(translated.items()):
            sink = ProblemSink(translation.meta.path)
            source = originals.get(item_id)
            folder = translation.meta.path.parent.name
            english_file = translation.meta.path.parents[2] / DEFAULT_LOCALE / folder / f"{item_id}.md"
            if source is None and english_file.exists():
                pass  # the English file has errors of its own, reported there
            elif source is None:
                sink.warning(
                    translation.meta.id_line,
                    f"'{item_id}' has no English original: add it in "
                    f"{DEFAULT_LOCALE}/ (English is the fallback for every other language)",
                )
            elif type(source) is not type(translation):
                sink.error(
                    translation.meta.id_line,
                    f"'{item_id}' is a {type(source).__name__.lower()} in English "
                    f"({source.meta.path}): put the translation in the same folder",
                )
            else:
                _compare_meta(source, translation, sink)
                if isinstance(source, Exercise) and isinstance(translation, Exercise):
                    _compare_exercises(source, translation, sink)
            problems.extend(sink.problems)
    return problems
