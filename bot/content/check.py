"""`python -m bot.content.check [DIR]`: validate the content library and print every problem.

Each problem is printed as `file:line: severity: message`. The exit code is 1 when there is an
error (a file that would not be delivered), 0 otherwise (warnings do not fail the check).
"""

from __future__ import annotations

import argparse
import re
import string
import sys
import tomllib
from collections.abc import Collection, Sequence
from pathlib import Path

from bot.content.checkins import check_questionnaires
from bot.content.instruments import check_instruments
from bot.content.library import Library, load_library
from bot.content.model import DEFAULT_LOCALE, STARTER_TRACKS, Snippet
from bot.content.problems import Problem, ProblemSink, Severity
from bot.content.validate import DEFAULT_GRADE_LIMIT

DEFAULT_CONTENT_DIR = Path("content")


def check_content(
    content_dir: Path, *, grade_limit: float = DEFAULT_GRADE_LIMIT, tracks: Collection[str] | None = None
) -> list[Problem]:
    """Every problem under `content_dir`, sorted by file and line: the library (psychoeducation and
    skills), the check-in questionnaires, the instruments (PHQ-9, GAD-7...), the UI texts (ui.toml),
    the safety rules, the group discussion prompts and the family reads for support persons.

    Drafts are checked like everything else and reported as not delivered (a warning). A clinician's
    broken edit is caught here, before a restart would refuse it. `tracks`: the program's
    `[content] tracks`; front matter may name only these (None: the starter tracks).
    """
    result = load_library(content_dir, allow_drafts=False, grade_limit=grade_limit,
                          tracks=tracks or STARTER_TRACKS)
    problems = list(result.problems) + _tracks_without_snippets(content_dir, result.library, tracks or ())
    for name in sorted({p.stem for p in content_dir.glob("*/checkins/*.toml")}):
        problems += check_questionnaires(content_dir, name)[1]
    if any(content_dir.glob("*/instruments/*.toml")):
        problems += check_instruments(content_dir)[1]
    # An author's folder may hold only the files they work on: ui.toml and the safety rules are
    # checked when the folder has them.
    if any(content_dir.glob("*/ui.toml")):
        problems += check_ui_texts(content_dir)
    if any(content_dir.glob("*/safety/*.toml")):
        problems += check_safety_rules(content_dir)
    if any(content_dir.glob("*/group_prompts/*")):  # cohort group chats' discussion prompts
        from bot.content.group_prompts import load_group_prompts

        problems += load_group_prompts(content_dir)[1]
    if any(content_dir.glob("*/family/*")):  # support persons' family reads (same checks as snippets)
        from bot.content.family import load_family

        problems += load_family(content_dir, grade_limit=grade_limit).problems
    return sorted(set(problems))


def _tracks_without_snippets(content_dir: Path, library: Library, tracks: Collection[str]) -> list[Problem]:
    """A configured track no snippet names: its participants get only the snippets for every track."""
    named = {name for item in library if isinstance(item, Snippet) for name in item.meta.tracks}
    return [
        Problem(content_dir / DEFAULT_LOCALE / "psychoeducation", 1, Severity.WARNING,
                f"no snippet names the track '{name}' ([content] tracks): its participants get only the "
                "snippets for every track; add it to the tracks = [...] of the snippets meant for them")
        for name in tracks if name not in named
    ]


def check_safety_rules(content_dir: Path) -> list[Problem]:
    """The safety rule files' problems (each already names its file and line), as errors."""
    from bot.safety.rulefiles import SafetyRulesError
    from bot.safety.rules import SafetyRules

    try:
        SafetyRules.load(content_dir)
    except SafetyRulesError as error:
        return [_parse_located(text) for text in error.problems]
    return []


def _parse_located(text: str) -> Problem:
    match = re.match(r"(.+?):(\d+): (.*)", text, re.S)
    if match is None:
        path, _, message = text.partition(": ")
        return Problem(Path(path), 1, Severity.ERROR, message or text)
    return Problem(Path(match.group(1)), int(match.group(2)), Severity.ERROR, match.group(3))


def check_ui_texts(content_dir: Path) -> list[Problem]:
    """ui.toml (and ui/*.toml, one file per feature) in every language: valid TOML, texts only,
    well-formed {placeholders}, no key in two files, the same placeholders as English (a
    translation may not invent or drop one), no key missing or extra."""
    problems: list[Problem] = []
    # locale → key → (text, file, line)
    tables: dict[str, dict[str, tuple[str, Path, int]]] = {}
    paths = sorted(content_dir.glob("*/ui.toml")) + sorted(content_dir.glob("*/ui/*.toml"))
    for path in paths:
        locale = path.parent.name if path.name == "ui.toml" else path.parent.parent.name
        sink = ProblemSink(path)
        text = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line = int(m.group(1)) if (m := re.search(r"line (\d+)", str(exc))) else 1
            sink.error(line, f"not valid TOML: {exc}; the bot would not start")
            problems += sink.problems
            continue
        lines = _key_lines(text)
        flat: dict[str, str] = {}
        _flatten_texts(data, "", flat, sink, lines)
        table = tables.setdefault(locale, {})
        for key, value in flat.items():
            try:
                list(string.Formatter().parse(value))
            except ValueError as exc:
                sink.error(lines.get(key, 1), f"{key}: broken placeholder ({exc}); write {{name}}, and {{{{ }}}} "
                           "for a literal brace")
            if key in table:
                sink.error(lines.get(key, 1), f"{key} is already defined in {table[key][1]}; keep each text "
                           "in one file (the bot would not start)")
                continue
            table[key] = (value, path, lines.get(key, 1))
        problems += sink.problems
    english = tables.get("en")
    if english is None:
        return [*problems, Problem(content_dir / "en" / "ui.toml", 1, Severity.ERROR,
                                   "missing: English is the fallback for every text; the bot would not start")]
    for locale, table in tables.items():
        if locale == "en":
            continue
        for key, (english_text, english_path, _) in english.items():
            if key not in table:
                # Report where the translation belongs: the file named like English's.
                where = content_dir / locale / english_path.relative_to(content_dir / "en")
                problems.append(Problem(where, 1, Severity.WARNING,
                                        f"{key} is not translated (English is used); add it"))
            elif _placeholders(table[key][0]) != _placeholders(english_text):
                problems.append(Problem(table[key][1], table[key][2], Severity.ERROR,
                                        f"{key} uses {sorted(_placeholders(table[key][0]))} but English uses "
                                        f"{sorted(_placeholders(english_text))}; use the same {{placeholders}} "
                                        "as English"))
        for key in table.keys() - english.keys():
            problems.append(Problem(table[key][1], table[key][2], Severity.WARNING,
                                    f"{key} is not in English; remove it or add it there"))
    return problems


def _placeholders(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError:
        return set()


def _flatten_texts(table: dict[str, object], prefix: str, flat: dict[str, str], sink: ProblemSink,
                   lines: dict[str, int]) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten_texts(value, f"{name}.", flat, sink, lines)
        elif isinstance(value, str):
            flat[name] = value
        else:
            sink.error(lines.get(name, 1), f"{name}: every UI text must be a string in quotes, "
                       f"not {type(value).__name__}")


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key → line where it is written ([section] headers and `key =` lines)."""
    found: dict[str, int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if header := re.fullmatch(r"\[([^\[\]]+)\]\s*(#.*)?", stripped):
            section = header.group(1).strip() + "."
        elif key := re.match(r"([A-Za-z0-9_\-]+)\s*=", stripped):
            found.setdefault(section + key.group(1), number)
    return found


def build_parser(prog: str = "python -m bot.content.check") -> argparse.ArgumentParser:
    """The check's arguments; `prog` lets `iopbot content check` reuse it under its own name."""
    parser = argparse.ArgumentParser(prog=prog, description="Check the content library for mistakes.")
    parser.add_argument(
        "dir", nargs="?", type=Path, default=DEFAULT_CONTENT_DIR, help="content folder (default: content)"
    )
    parser.add_argument(
        "--grade-limit",
        type=float,
        default=DEFAULT_GRADE_LIMIT,
        help="highest reading grade allowed (default: 8)",
    )
    parser.add_argument(
        "--config", type=Path, default=Path("config.toml"),
        help="where the program's tracks are ([content] tracks; default: config.toml, when there is one)",
    )
    return parser


def _configured_tracks(config: Path) -> tuple[str, ...]:
    """`[content] tracks` of the program's config file; none when there is no such file."""
    from bot.config import load_settings

    return load_settings(config).content.tracks if config.is_file() else ()


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m bot.content.check") -> int:
    """Run the check; returns the exit code (1 if any error, else 0)."""
    args = build_parser(prog).parse_args(argv)
    from bot.config import ConfigError

    try:
        tracks = _configured_tracks(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = check_content(args.dir, grade_limit=args.grade_limit, tracks=tracks)
    for problem in problems:
        print(problem)
    errors = sum(1 for p in problems if p.is_error)
    verdict = "FAILED" if errors else "OK"
    print(f"content check {verdict}: {errors} errors, {len(problems) - errors} warnings", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
