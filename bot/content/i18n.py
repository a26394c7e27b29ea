"""Every string the bot says comes from `content/<locale>/ui.toml`, so a translation covers it all.

Keys are dotted (`[consent] agree` → "consent.agree"); values use `{name}` placeholders. A key
missing in a locale falls back to English; a key missing in English is a bug and raises at load
time in tests (`Texts.check`).
"""

from __future__ import annotations

import html
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FALLBACK_LOCALE = "en"


class TextsError(Exception):
    pass


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, str):
            flat[name] = value
        else:
            raise TextsError(f"{name}: every UI text must be a string, not {type(value).__name__}")
    return flat


@dataclass(frozen=True)
class Texts:
    by_locale: dict[str, dict[str, str]]

    @classmethod
    def load(cls, content_dir: Path) -> Texts:
        """Every locale's `ui.toml` plus its `ui/*.toml` (one file per feature, e.g. ui/goals.toml).

        A key defined in two files of one locale is an error: which one wins would depend on the
        order files are read in.
        """
        by_locale: dict[str, dict[str, str]] = {}
        where: dict[tuple[str, str], Path] = {}
        paths = sorted(content_dir.glob("*/ui.toml")) + sorted(content_dir.glob("*/ui/*.toml"))
        for path in paths:
            locale = path.parent.name if path.name == "ui.toml" else path.parent.parent.name
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise TextsError(f"{path}: not valid TOML: {exc}") from None
            try:
                flat = _flatten(data)
            except TextsError as exc:
                raise TextsError(f"{path}: {exc}") from None
            table = by_locale.setdefault(locale, {})
            for key in flat:
                if key in table:
                    raise TextsError(f"{path}: {key} is already defined in {where[locale, key]}; "
                                     "keep each text in one file")
                where[locale, key] = path
            table.update(flat)
        if FALLBACK_LOCALE not in by_locale:
            raise TextsError(f"{content_dir}/{FALLBACK_LOCALE}/ui.toml is missing: the bot has no words")
        return cls(by_locale)

    @property
    def locales(self) -> list[str]:
        return sorted(self.by_locale)

    def has(self, key: str) -> bool:
        return key in self.by_locale[FALLBACK_LOCALE]

    def get(self, key: str, locale: str = FALLBACK_LOCALE, /, **values: Any) -> str:
        """The text for `key` in `locale` (English if untranslated), with `values` filled in.

        Values are HTML-escaped: texts are sent with parse_mode HTML, and aliases or time zones
        typed by people must not become markup.
        """
        template = self.by_locale.get(locale, {}).get(key) or self.by_locale[FALLBACK_LOCALE].get(key)
        if template is None:
            raise KeyError(f"UI text {key!r} is missing from content/{FALLBACK_LOCALE}/ui.toml")
        if not values:
            return template
        return template.format_map({k: html.escape(str(v), quote=False) for k, v in values.items()})

    def check(self) -> list[str]:
        """Problems a translator should fix: missing keys and placeholders that differ from English."""
        problems: list[str] = []
        english = self.by_locale[FALLBACK_LOCALE]
        for locale, table in self.by_locale.items():
            if locale == FALLBACK_LOCALE:
                continue
            for key, text in english.items():
                if key not in table:
                    problems.append(f"content/{locale}/ui.toml: {key} is not translated (English is used)")
                elif _fields(table[key]) != _fields(text):
                    problems.append(f"content/{locale}/ui.toml: {key} uses other {{placeholders}} than English")
            for key in table.keys() - english.keys():
                problems.append(f"content/{locale}/ui.toml: {key} is not in English; remove it or add it there")
        return problems


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def locale_for(language_code: str | None, default: str) -> str:
    """The language to speak to someone the bot does not know yet, from their Telegram app's
    language ("es", "es-MX"): Spanish when it is Spanish, otherwise the program's default. Used by
    the safety gate (before any database access), for unknown people, and at enrollment."""
    primary = (language_code or "").split("-")[0].lower()
    return "es" if primary == "es" else default
