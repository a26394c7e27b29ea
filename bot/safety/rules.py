"""The rules layer of distress detection: clinician-written phrases, patterns and guards.

`SafetyRules.load(content_dir)` reads every `<locale>/safety/*.toml` under `content_dir`, checks
them (every problem is reported as `path:line: message` in one SafetyRulesError) and compiles
them. `assess(text, locale)` then returns an Assessment (levels.py) for one message:

1. The text is normalized (normalize.py): case, accents, apostrophes, spacing tricks, leetspeak,
   elongations, misspellings, filler words.
2. Candidate rules are found cheaply: every phrase needs a word (its anchor); the message's words
   are intersected with the set of anchors, so a benign message usually costs one set operation.
   Only candidate phrases are tested with their regular expressions.
3. Each match passes the guards of its locale (guards.toml): negation and idioms cancel it, talk
   about another person makes it concern (media: cancelled), past and recovery talk makes it
   concern unless something says it is happening now ("again", "still").
4. Markers (rules with `raises`) make a co-occurring risk imminent: a plan, means or time
   ("tonight", "i have the pills", "goodbye everyone") next to ideation.

Languages: the rules of the message's locale run, and the English rules always run as well,
because people mix languages (and English internet slang is common in Spanish messages). An
unknown locale uses English. Each match is guarded by the guards of the locale it came from.

Reasons name rules and guards ("rule:suicide/want_to_die", "guard:past_tense"), never the text.
Nothing here logs the text being assessed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.safety.levels import NO_RISK, Assessment, Category, Level
from bot.safety.normalize import SENTENCE_END, Normalizer
from bot.safety.phrases import PhraseError, compile_phrase, impossible_literals, pattern_literal, trie_regex
from bot.safety.rulefiles import (
    GuardKind,
    GuardSpec,
    RuleFile,
    RuleSpec,
    SafetyRulesError,
    read_rule_file,
)

__all__ = ["Finding", "Rule", "SafetyRules", "SafetyRulesError"]

log = logging.getLogger(__name__)

FALLBACK_LOCALE = "en"
_MIN_GLUED_TOKEN = 8
_CONTEXT_CHARS = 240  # how far back/forward guard windows look, in characters of normalized text
# A marker that raises only urgent risks (time words, "i have a plan") counts when it is this many
# words or fewer from the risk: in a long message "tomorrow" may be about an exam, not the plan.
NEAR_MARKER_WORDS = 12


@dataclass(frozen=True)
class Rule:
    """A compiled rule: what a match means, and where it was written."""

    id: str
    category: Category
    level: Level
    raises: Level | None  # a marker: a risk at this level or above in the same message → imminent
    locale: str
    where: str  # "path:line"
    notes: str = ""

    @property
    def reason(self) -> str:
        return f"rule:{self.category.value}/{self.id}"

    @property
    def is_marker(self) -> bool:
        return self.raises is not None


@dataclass
class Finding:
    """One rule matched in one message, and what the guards made of it (for explain/eval)."""

    rule: Rule
    start: int  # span in the normalized text
    end: int
    level: Level  # after guards and markers
    guard: str | None = None  # id of the guard that lowered or cancelled it
    raised_by: str | None = None  # reason of the marker that made it imminent

    @property
    def cancelled(self) -> bool:
        return self.level == Level.NONE and not self.rule.is_marker

    @property
    def lowered(self) -> bool:
        return self.guard is not None


@dataclass
class _GuardGroup:
    """All guards of one kind in one locale, as one regex with a named group per guard.

    Like the rules, the regex expects a space before every word, so `find` adds one; the spans it
    returns are in the coordinates of the text it was given.
    """

    regex: re.Pattern[str]
    ids: dict[str, tuple[str, int, frozenset[Category]]]  # group name → (guard id, window, categories)
    window: int  # the largest window of the group
    # Like the rules, every guard phrase needs one of these words: a cheap test before the regex.
    anchors: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    always: bool = False  # a pattern without a known word: always run the regex

    def may_occur(self, words: Iterable[str]) -> bool:
        """False when none of `words` could start a phrase of this group."""
        if self.always:
            return True
        words = words if isinstance(words, set | frozenset) else set(words)
        if not self.anchors.isdisjoint(words):
            return True
        return bool(self.prefixes) and any(word.startswith(self.prefixes) for word in words)

    def find(self, text: str, category: Category | None = None) -> list[tuple[str, int, int, int]]:
        """(guard id, window, start, end) of every guard phrase in `text` that applies to `category`."""
        found = []
        for match in self.regex.finditer(" " + text):
            name = match.lastgroup
            if name is not None:
                guard_id, window, categories = self.ids[name]
                if category is None or category in categories:
                    found.append((guard_id, window, match.start(), match.end() - 1))
        return found

    def occurs(self, text: str, start: int = 0) -> bool:
        """Whether any phrase of the group starts at or after `start` in `text`."""
        return self.regex.search(" " + text, start) is not None


@dataclass
class _Locale:
    """The compiled rules and guards of one locale."""

    name: str
    rules: list[Rule] = field(default_factory=list)
    # Every phrase and pattern is one regex, matched against " " + normalized text: each starts
    # with the space before its first word, a literal the regex engine can find quickly.
    regexes: list[re.Pattern[str]] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # regex index → rule index
    anchors: dict[str, list[int]] = field(default_factory=dict)  # word → regex indexes
    anchor_set: frozenset[str] = frozenset()
    prefixes: dict[str, list[int]] = field(default_factory=dict)  # word start → regex indexes
    prefix_regex: re.Pattern[str] | None = None
    literals: list[tuple[str, int]] = field(default_factory=list)  # (text every match contains, regex)
    always: list[int] = field(default_factory=list)  # patterns that could not be anchored
    secondary: frozenset[int] = frozenset()  # regexes of markers that mean nothing alone
    glued: dict[str, int] = field(default_factory=dict)  # "killmyself" → rule index
    glued_regex: re.Pattern[str] | None = None
    guards: dict[GuardKind, _GuardGroup] = field(default_factory=dict)


class SafetyRules:
    """Compiled safety rules for every locale found under a content directory."""

    def __init__(self, locales: dict[str, _Locale], normalizer: Normalizer, load_seconds: float) -> None:
        self._locales = locales
        self._normalizer = normalizer
        self._chosen: dict[str, list[_Locale]] = {}  # locale string → locales whose rules run
        self.load_seconds = load_seconds

    # --- loading ----------------------------------------------------------------------------

    @classmethod
    def load(cls, content_dir: Path) -> SafetyRules:
        """Load and check `content_dir/<locale>/safety/*.toml`; raise SafetyRulesError on any problem."""
        started = time.perf_counter()
        content_dir = Path(content_dir)
        problems: list[str] = []
        files: list[RuleFile] = []
        for path in sorted(content_dir.glob("*/safety/*.toml")):
            parsed = read_rule_file(path, path.parent.parent.name, problems)
            if parsed is not None:
                files.append(parsed)
        if not any(f.locale == FALLBACK_LOCALE and f.rules for f in files) and not problems:
            problems.append(
                f"{content_dir / FALLBACK_LOCALE / 'safety'}:0: no English safety rules found; the "
                "English rules are the fallback for every locale, so add at least one rule file there"
            )
        _check_unique_ids(files, problems)
        normalizer = Normalizer(_vocabulary(files))
        locales = {name: _Locale(name) for name in sorted({f.locale for f in files})}
        for parsed in files:
            target = locales[parsed.locale]
            for spec in parsed.rules:
                _compile_rule(target, spec, parsed.locale, normalizer, problems)
        for name, target in locales.items():
            specs = [g for f in files if f.locale == name for g in f.guards]
            _compile_guards(target, specs, normalizer, problems)
            _finish_indexes(target)
        if problems:
            raise SafetyRulesError(problems)
        seconds = time.perf_counter() - started
        for name, target in locales.items():
            log.info("safety rules loaded: locale=%s rules=%d", name, len(target.rules))
        return cls(locales, normalizer, seconds)

    # --- assessing --------------------------------------------------------------------------

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(self._locales)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(rule for target in self._locales.values() for rule in target.rules)

    def normalize(self, text: object) -> str:
        """The normalized form the rules are matched against (see normalize.py)."""
        return self._normalizer.normalize(text)

    def assess(self, text: str, locale: str = FALLBACK_LOCALE) -> Assessment:
        """Assess one message: level, categories, and the rules (never the words) that decided."""
        findings = self.explain(text, locale)
        if not findings:
            return NO_RISK
        return _to_assessment(findings)

    def explain(self, text: str, locale: str = FALLBACK_LOCALE) -> list[Finding]:
        """Every rule that matched, including the ones a guard cancelled (for evaluation)."""
        normalized = self._normalizer.normalize(text)
        if not normalized:
            return []
        tokens = normalized.split()
        token_set = set(tokens)
        spaced = " " + normalized
        findings: list[Finding] = []
        for target in self._locales_for(locale):
            raw = _raw_matches(target, normalized, spaced, tokens, token_set)
            if raw:
                findings += _apply_guards(target, normalized, raw, token_set)
        if findings:
            _apply_markers(findings, normalized)
        return findings

    def _locales_for(self, locale: str) -> list[_Locale]:
        chosen = self._chosen.get(locale)
        if chosen is None:
            chosen = self._chosen[locale] = self._choose_locales(locale)
        return chosen

    def _choose_locales(self, locale: str) -> list[_Locale]:
        language = (str(locale or "") or FALLBACK_LOCALE).replace("_", "-").split("-")[0].strip().lower()
        chosen = [self._locales[language]] if language in self._locales else []
        if language != FALLBACK_LOCALE and FALLBACK_LOCALE in self._locales:
            chosen.append(self._locales[FALLBACK_LOCALE])
        return chosen


# --- loading helpers ----------------------------------------------------------------------------


def _check_unique_ids(files: list[RuleFile], problems: list[str]) -> None:
    """Rule ids are unique everywhere (a reason must name one rule); guard ids per locale."""
    seen_rules: dict[str, str] = {}
    seen_guards: dict[tuple[str, str], str] = {}
    for parsed in files:
        for rule in parsed.rules:
            if rule.id in seen_rules:
                problems.append(
                    f"{rule.where}: duplicate rule id '{rule.id}' (first at {seen_rules[rule.id]}); "
                    "give this rule another id"
                )
            else:
                seen_rules[rule.id] = rule.where
        for guard in parsed.guards:
            key = (parsed.locale, guard.id)
            if key in seen_guards:
                problems.append(
                    f"{guard.where}: duplicate guard id '{guard.id}' (first at {seen_guards[key]}); "
                    "give this guard another id"
                )
            else:
                seen_guards[key] = guard.where


def _vocabulary(files: Iterable[RuleFile]) -> set[str]:
    """Every plain word the rules use: kept intact when elongated text is shortened."""
    words: set[str] = set()
    for parsed in files:
        for spec in [*parsed.rules, *parsed.guards]:
            for phrase in spec.phrases:
                words.update(w.casefold() for w in re.findall(r"[^\W\d_]+", phrase))
    return words


def _where(spec: RuleSpec | GuardSpec, table: str, key: str, value: str) -> str:
    path = spec.where.rsplit(":", 1)[0]
    return f"{path}:{spec.lines.line(table, spec.index, key, value)}"


def _compile_rule(target: _Locale, spec: RuleSpec, locale: str, normalizer: Normalizer, problems: list[str]) -> None:
    rule = Rule(spec.id, spec.category, spec.level, spec.raises, locale, spec.where, spec.notes)
    rule_index = len(target.rules)
    target.rules.append(rule)
    for phrase in spec.phrases:
        try:
            compiled = compile_phrase(phrase, normalizer.normalize)
        except PhraseError as error:
            problems.append(f"{_where(spec, 'rule', 'phrases', phrase)}: rule '{spec.id}': phrase {phrase!r}: {error}")
            continue
        regex_index = _add_regex(target, re.compile(compiled.spaced_regex), rule_index)
        for word in compiled.anchors:
            target.anchors.setdefault(word, []).append(regex_index)
        for prefix in compiled.prefixes:
            target.prefixes.setdefault(prefix, []).append(regex_index)
        for glued in compiled.glued:
            target.glued.setdefault(glued, rule_index)
    for pattern in spec.patterns:
        regex = _compile_pattern(spec, "rule", pattern, problems)
        if regex is None:
            continue
        regex_index = _add_regex(target, regex, rule_index)
        literal = pattern_literal(pattern)
        if literal is None:
            target.always.append(regex_index)
        else:
            target.literals.append((literal, regex_index))


def _compile_pattern(spec: RuleSpec | GuardSpec, table: str, pattern: str, problems: list[str]) -> re.Pattern[str] | None:
    kind = "rule" if table == "rule" else "guard"
    where = _where(spec, table, "patterns", pattern)
    try:
        # Patterns match from the start of a word, like phrases: after the space before it.
        regex = re.compile(f" (?:{pattern})")
    except re.error as error:
        problems.append(
            f"{where}: {kind} '{spec.id}': invalid regular expression {pattern!r}: {error}; "
            "fix it, or write the idea as phrases instead"
        )
        return None
    bad = impossible_literals(pattern)
    if bad:
        problems.append(
            f"{where}: {kind} '{spec.id}': pattern {pattern!r} contains {', '.join(repr(c) for c in bad)}, "
            "which never occur in normalized text; write lowercase letters without accents, "
            "digits and spaces only"
        )
        return None
    if regex.search(" "):
        problems.append(f"{where}: {kind} '{spec.id}': pattern {pattern!r} matches empty text; make it require a word")
        return None
    return regex


def _add_regex(target: _Locale, regex: re.Pattern[str], rule_index: int) -> int:
    target.regexes.append(regex)
    target.owner.append(rule_index)
    return len(target.regexes) - 1


def _compile_guards(target: _Locale, specs: Sequence[GuardSpec], normalizer: Normalizer, problems: list[str]) -> None:
    by_kind: dict[GuardKind, list[tuple[GuardSpec, list[str]]]] = {}
    anchors: dict[GuardKind, set[str]] = {}
    prefixes: dict[GuardKind, set[str]] = {}
    always: set[GuardKind] = set()
    for spec in specs:
        pieces: list[str] = []
        for phrase in spec.phrases:
            try:
                compiled = compile_phrase(phrase, normalizer.normalize)
            except PhraseError as error:
                problems.append(f"{_where(spec, 'guard', 'phrases', phrase)}: guard '{spec.id}': phrase {phrase!r}: {error}")
                continue
            pieces.append(compiled.spaced_regex)
            anchors.setdefault(spec.kind, set()).update(compiled.anchors)
            prefixes.setdefault(spec.kind, set()).update(compiled.prefixes)
        for pattern in spec.patterns:
            regex = _compile_pattern(spec, "guard", pattern, problems)
            if regex is not None:
                pieces.append(regex.pattern)
                always.add(spec.kind)
        if pieces:
            by_kind.setdefault(spec.kind, []).append((spec, pieces))
    for kind, entries in by_kind.items():
        ids: dict[str, tuple[str, int, frozenset[Category]]] = {}
        groups: list[str] = []
        for number, (spec, pieces) in enumerate(entries):
            name = f"g{number}"
            ids[name] = (spec.id, spec.window, spec.categories)
            groups.append(f"(?P<{name}>{'|'.join(pieces)})")
        window = max(spec.window for spec, _ in entries)
        target.guards[kind] = _GuardGroup(
            re.compile("|".join(groups)),
            ids,
            window,
            frozenset(anchors.get(kind, ())),
            tuple(sorted(prefixes.get(kind, ()))),
            kind in always,
        )


def _finish_indexes(target: _Locale) -> None:
    target.anchor_set = frozenset(target.anchors)
    target.secondary = frozenset(
        index
        for index, rule_index in enumerate(target.owner)
        if target.rules[rule_index].is_marker and target.rules[rule_index].level == Level.NONE
    )
    if target.prefixes:
        target.prefix_regex = re.compile(f" ({trie_regex(target.prefixes)})")
    if target.glued:
        target.glued_regex = re.compile(trie_regex(target.glued))


# --- matching -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raw:
    rule_index: int
    start: int
    end: int


def _raw_matches(target: _Locale, text: str, spaced: str, tokens: list[str], token_set: set[str]) -> list[_Raw]:
    """Every phrase or pattern match in `text`, testing only the candidates its words allow.

    `spaced` is " " + text, and `tokens` its words: computed once for all locales.
    """
    candidates: set[int] = set(target.always)
    for word in token_set.intersection(target.anchor_set):
        candidates.update(target.anchors[word])
    if target.prefix_regex is not None:
        for match in target.prefix_regex.finditer(spaced):
            candidates.update(target.prefixes[match.group(1)])
    for literal, regex_index in target.literals:
        if literal in spaced:
            candidates.add(regex_index)
    glued = _glued_matches(target, text, tokens) if target.glued_regex is not None else []
    if not candidates and not glued:
        return []
    # Markers that mean nothing alone ("tonight") are only looked for next to a risk.
    primary = candidates - target.secondary
    found = _search(target, spaced, primary) + glued
    if found and candidates is not primary and any(
        not target.rules[raw.rule_index].is_marker for raw in found
    ):
        found += _search(target, spaced, candidates & target.secondary)
    return found


def _search(target: _Locale, spaced: str, candidates: Iterable[int]) -> list[_Raw]:
    found: list[_Raw] = []
    for regex_index in candidates:
        rule_index = target.owner[regex_index]
        # In " " + text, a match starts at the space before the word: that index is the word's in text.
        for match in target.regexes[regex_index].finditer(spaced):
            found.append(_Raw(rule_index, match.start(), match.end() - 1))
    return found


def _glued_matches(target: _Locale, text: str, tokens: list[str]) -> list[_Raw]:
    """Phrases written as one word: hashtags ("#wanttodie") and spaced letters ("k i l l m e")."""
    assert target.glued_regex is not None
    found: list[_Raw] = []
    for token in {t for t in tokens if len(t) >= _MIN_GLUED_TOKEN}:
        if token in target.glued or (hit := target.glued_regex.search(token)) is not None:
            key = token if token in target.glued else hit.group(0)  # type: ignore[union-attr]
            start = _token_start(text, token)
            found.append(_Raw(target.glued[key], start, start + len(token)))
    return found


def _token_start(text: str, token: str) -> int:
    match = re.search(rf"(?<!\S){re.escape(token)}(?!\S)", text)
    return match.start() if match else 0


# --- guards -------------------------------------------------------------------------------------


def _words_before(text: str, start: int) -> str:
    """The words of the same sentence just before `start` (up to _CONTEXT_CHARS)."""
    before = text[max(0, start - _CONTEXT_CHARS) : start]
    cut = before.rfind(f" {SENTENCE_END} ")
    if cut >= 0:
        before = before[cut + 3 :]
    return before.strip()


def _words_after(text: str, end: int) -> str:
    after = text[end : end + _CONTEXT_CHARS]
    cut = after.find(f" {SENTENCE_END} ")
    if cut >= 0:
        after = after[:cut]
    return after.strip()


def _last_words(words: str, count: int) -> str:
    if count <= 0:
        return ""
    parts = words.split(" ")
    return " ".join(parts[-count:])


def _first_words(words: str, count: int) -> str:
    if count <= 0:
        return ""
    return " ".join(words.split(" ")[:count])


def _within(window: str, guard_window: int, group_window: int, start: int) -> bool:
    """Whether a guard hit at `start` of a window of `group_window` words is within its own window."""
    if guard_window >= group_window:
        return True
    return len(window[start:].split()) <= guard_window


def _merge_overlapping(raw: list[_Raw]) -> list[_Raw]:
    """One match per rule and utterance: overlapping matches of a rule become the widest span."""
    merged: list[_Raw] = []
    for match in sorted(raw, key=lambda m: (m.rule_index, m.start, -m.end)):
        last = merged[-1] if merged else None
        if last is not None and last.rule_index == match.rule_index and match.start < last.end:
            if match.end > last.end:
                merged[-1] = _Raw(last.rule_index, last.start, match.end)
            continue
        merged.append(match)
    return merged


def _apply_guards(target: _Locale, text: str, raw: list[_Raw], words: set[str]) -> list[Finding]:
    # Which kinds of guard could apply anywhere in this message: most have none of the words.
    guards = {kind: group for kind, group in target.guards.items() if group.may_occur(words)}
    if GuardKind.SPEAKER in target.guards:
        guards[GuardKind.SPEAKER] = target.guards[GuardKind.SPEAKER]
    if GuardKind.PRESENT in target.guards:
        guards[GuardKind.PRESENT] = target.guards[GuardKind.PRESENT]
    idioms_possible = GuardKind.IDIOM in guards
    before_kinds = {GuardKind.NEGATION, GuardKind.MEDIA, GuardKind.OTHER_PERSON, GuardKind.PAST}
    if before_kinds.isdisjoint(guards) and not idioms_possible:
        return [Finding(target.rules[m.rule_index], m.start, m.end, target.rules[m.rule_index].level)
                for m in _merge_overlapping(raw)]  # fmt: skip
    findings: list[Finding] = []
    for match in _merge_overlapping(raw):
        rule = target.rules[match.rule_index]
        finding = Finding(rule, match.start, match.end, rule.level)
        findings.append(finding)
        category = rule.category
        idiom = _idiom(guards, text, match, category) if idioms_possible else None
        if idiom is not None:
            finding.level, finding.guard = Level.NONE, idiom
            continue
        before = _words_before(text, match.start)
        cancel = _guard_before(guards, GuardKind.NEGATION, before, category) or _guard_before(
            guards, GuardKind.MEDIA, before, category
        )
        if cancel is not None:
            finding.level, finding.guard = Level.NONE, cancel
            continue
        lowered = _other_person(guards, before, category) or _past(
            guards, before, _words_after(text, match.end), category
        )
        if lowered is not None:
            # Second-hand, past or recovery talk: concern at most, and a marker in such talk
            # ("i had a plan back then") does not make anything imminent.
            finding.guard = lowered
            finding.level = min(finding.level, Level.CONCERN)
    return findings


def _idiom(guards: dict[GuardKind, _GuardGroup], text: str, match: _Raw, category: Category) -> str | None:
    """An idiom overlapping the match ("dying to see you"), looked for in the words around it."""
    group = guards.get(GuardKind.IDIOM)
    if group is None:
        return None
    low = 0 if match.start <= _CONTEXT_CHARS else text.rfind(" ", 0, match.start - _CONTEXT_CHARS) + 1
    high = text.find(" ", match.end + _CONTEXT_CHARS)
    around = text[low : high if high >= 0 else len(text)]
    for guard_id, _window, start, end in group.find(around, category):
        if low + start < match.end and match.start < low + end:
            return guard_id
    return None


def _speaker_after(guards: dict[GuardKind, _GuardGroup], window: str, position: int) -> bool:
    speaker = guards.get(GuardKind.SPEAKER)
    return speaker is not None and speaker.occurs(window, position)


def _guard_before(
    guards: dict[GuardKind, _GuardGroup], kind: GuardKind, before: str, category: Category
) -> str | None:
    """A negation or media guard just before the phrase, with the participant not speaking after it."""
    group = guards.get(kind)
    if group is None:
        return None
    window = _last_words(before, group.window)
    if not group.may_occur(window.split()):
        return None
    for guard_id, guard_window, start, end in reversed(group.find(window, category)):
        if _within(window, guard_window, group.window, start) and not _speaker_after(guards, window, end):
            return guard_id
    return None


def _other_person(guards: dict[GuardKind, _GuardGroup], before: str, category: Category) -> str | None:
    """The nearest subject before the phrase is someone else ("my brother", "she")."""
    group = guards.get(GuardKind.OTHER_PERSON)
    if group is None:
        return None
    window = _last_words(before, group.window)
    if not group.may_occur(window.split()):
        return None
    others = [hit for hit in group.find(window, category) if _within(window, hit[1], group.window, hit[2])]
    if not others:
        return None
    guard_id, _window, _start, end = others[-1]
    if _speaker_after(guards, window, end):
        return None
    return guard_id


def _past(guards: dict[GuardKind, _GuardGroup], before: str, after: str, category: Category) -> str | None:
    """Past or recovery talk around the phrase, and nothing saying it is happening now."""
    group = guards.get(GuardKind.PAST)
    if group is None:
        return None
    window_before = _last_words(before, group.window)
    window_after = _first_words(after, group.window)
    if not group.may_occur(f"{window_before} {window_after}".split()):
        return None
    found = None
    for guard_id, guard_window, start, _end in group.find(window_before, category):
        if _within(window_before, guard_window, group.window, start):
            found = guard_id
    if found is None:
        for guard_id, guard_window, _start, end in group.find(window_after, category):
            if len(window_after[:end].split()) <= guard_window:
                found = guard_id
                break
    if found is None:
        return None
    present = guards.get(GuardKind.PRESENT)
    if present is not None:
        near = _last_words(before, present.window) + " | " + _first_words(after, present.window)
        if present.find(near, category):
            return None  # "i used to cut and i do it again": when unsure, the higher level
    return found


# --- combining ----------------------------------------------------------------------------------


def _apply_markers(findings: list[Finding], text: str) -> None:
    """A plan, means or time next to a risk makes that risk imminent."""
    markers = [f for f in findings if f.rule.is_marker and f.guard is None]
    if not markers:
        return
    for finding in findings:
        if finding.rule.is_marker or finding.guard is not None or finding.level == Level.NONE:
            continue
        for marker in markers:
            threshold = marker.rule.raises
            if threshold is None or not threshold <= finding.level < Level.IMMINENT:
                continue
            if threshold >= Level.URGENT and _words_between(text, finding, marker) > NEAR_MARKER_WORDS:
                continue
            finding.level = Level.IMMINENT
            finding.raised_by = marker.rule.reason
            break


def _words_between(text: str, a: Finding, b: Finding) -> int:
    first, second = (a, b) if a.start <= b.start else (b, a)
    if second.start <= first.end:
        return 0
    return len(text[first.end : second.start].split())


def _to_assessment(findings: list[Finding]) -> Assessment:
    active = [f for f in findings if f.level > Level.NONE]
    if not active:
        return NO_RISK
    active.sort(key=lambda f: (-f.level, f.start))
    categories = tuple(dict.fromkeys(f.rule.category for f in active))
    reasons: list[str] = []
    for finding in active:
        reasons.append(finding.rule.reason)
        if finding.raised_by:
            reasons.append(finding.raised_by)
        if finding.guard:
            reasons.append(f"guard:{finding.guard}")
    return Assessment(active[0].level, categories, tuple(dict.fromkeys(reasons)))
