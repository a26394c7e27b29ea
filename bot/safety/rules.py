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

Languages: every locale's rules run on every message, because people write in the language of the
moment, not of their settings, and mix languages; the participant's locale only picks the reply.
Each match is guarded by the guards of the locale it came from.

Reasons name rules and guards ("rule:suicide/want_to_die", "guard:past_tense"), never the text.
Nothing here logs the text being assessed.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.safety.levels import NO_RISK, Assessment, Category, Construct, Level, construct_reason
from bot.safety.normalize import SENTENCE_END, Normalizer
from bot.safety.phrases import (
    PhraseError,
    compile_phrase,
    impossible_literals,
    pattern_literal,
    trie_regex,
    word_cost,
)
from bot.safety.rulefiles import (
    WORD_LIST_USE,
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
    construct: Construct = Construct.DISTRESS
    detail: str = ""
    first_person: bool = False  # a [[construct]] whose own words are about the participant

    @property
    def reason(self) -> str:
        return f"rule:{self.category.value}/{self.id}"

    @property
    def construct_reason(self) -> str:
        return construct_reason(self.construct, self.detail)

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
        """A risk phrase that a guard (negation, idiom, media) made mean nothing."""
        return self.level == Level.NONE and not self.rule.is_marker


@dataclass(frozen=True)
class _Idioms:
    """The idiom guards of one locale, as one regex with a named group per guard.

    Like the rules, the regex expects a space before every word, so `find` adds one; the spans it
    returns are in the coordinates of the text it was given.
    """

    regex: re.Pattern[str]
    ids: dict[str, tuple[str, frozenset[Category]]]  # group name → (guard id, categories)

    def find(self, text: str) -> list[tuple[str, frozenset[Category], int, int]]:
        """(guard id, categories, start, end) of every idiom in `text`."""
        found = []
        for match in self.regex.finditer(" " + text):
            name = match.lastgroup
            if name is not None:
                guard_id, categories = self.ids[name]
                found.append((guard_id, categories, match.start(), match.end() - 1))
        return found


@dataclass(frozen=True)
class _Hit:
    """A guard phrase found near a risk phrase; start and end are positions in the window searched."""

    kind: GuardKind
    guard_id: str
    window: int
    start: int
    end: int


# The order in which guard kinds win when two start at the same word.
_KIND_ORDER = (
    GuardKind.NEGATION,
    GuardKind.MEDIA,
    GuardKind.OTHER_PERSON,
    GuardKind.PAST,
    GuardKind.PRESENT,
    GuardKind.SPEAKER,
)


@dataclass(frozen=True)
class _ContextGuards:
    """Every guard that looks at the words around a risk phrase, as one regex: one pass per window.

    Each guard is a named group in a lookahead after the space before a word, so guards starting
    at different words are all found in a single search.
    """

    regex: re.Pattern[str]
    names: dict[str, tuple[GuardKind, str, int, frozenset[Category]]]
    before_words: int  # the largest window of the guards that look before the phrase
    after_words: int  # the largest window of past/present guards, which also look after it

    def hits(self, window: str, category: Category) -> list[_Hit]:
        found = []
        for match in self.regex.finditer(" " + window):
            name = match.lastgroup
            if name is None:
                continue
            kind, guard_id, size, categories = self.names[name]
            if category in categories:
                start, end = match.span(name)
                found.append(_Hit(kind, guard_id, size, start - 1, end - 1))
        return found


@dataclass(frozen=True)
class _WordGroup:
    """The phrases that need one word, as one regex: a message with the word runs it once.

    Each phrase is a named group inside a lookahead after the space before a word, so phrases
    starting at different words are all found; where two start at the same word, the first listed
    wins, and they are listed from the most to the least urgent.
    """

    regex: re.Pattern[str]
    regex_index: dict[str, int]  # group name → index of the phrase's own regex

    def matches(self, spaced: str, owner: list[int]) -> list[_Raw]:
        found = []
        for match in self.regex.finditer(spaced):
            name = match.lastgroup
            if name is not None:
                start, end = match.span(name)
                # positions in " " + text, minus the leading space
                found.append(_Raw(owner[self.regex_index[name]], start - 1, end - 1))
        return found


# Words that end a clause for a [[construct]]: its parts never straddle them ("i got pills . the
# bridge was closed"; "i bought rope but for camping"). Sentence ends come from the normalizer.
_CLAUSE_BREAKS = frozenset({SENTENCE_END, "but", "although", "though", "pero", "aunque", "sino"})
_MAX_SPANS_PER_PART = 6  # a word class found more often than this in one message: its first ones


@dataclass(frozen=True)
class _Combo:
    """A compiled [[construct]]: one regex per part, and the words each part needs."""

    rule_index: int
    parts: tuple[re.Pattern[str], ...]  # " (?=(body|body))": every start of the part, group 1 its span
    needs: tuple[tuple[frozenset[str], tuple[str, ...]], ...]  # per part: (anchor words, word starts)
    window: int
    unless: re.Pattern[str] | None
    sentences: bool = False  # the parts may stand in different sentences (still within the window)


@dataclass
class _Locale:
    """The compiled rules and guards of one locale."""

    name: str
    rules: list[Rule] = field(default_factory=list)
    # Every phrase and pattern is one regex, matched against " " + normalized text: each starts
    # with the space before its first word, a literal the regex engine can find quickly.
    regexes: list[re.Pattern[str] | None] = field(default_factory=list)  # None: only in word groups
    owner: list[int] = field(default_factory=list)  # regex index → rule index
    bodies: dict[int, str] = field(default_factory=dict)  # phrase regex index → regex without the space
    anchors: dict[str, list[int]] = field(default_factory=dict)  # word → regex indexes
    anchor_set: frozenset[str] = frozenset()
    word_groups: dict[str, tuple[_WordGroup | None, _WordGroup | None]] = field(default_factory=dict)
    prefixes: dict[str, list[int]] = field(default_factory=dict)  # word start → regex indexes
    prefix_regex: re.Pattern[str] | None = None
    literals: list[tuple[str, int]] = field(default_factory=list)  # (text every match contains, regex)
    always: list[int] = field(default_factory=list)  # patterns that could not be anchored
    secondary: frozenset[int] = frozenset()  # regexes of markers that mean nothing alone
    glued: dict[str, int] = field(default_factory=dict)  # "killmyself" → rule index
    glued_regex: re.Pattern[str] | None = None
    idioms: _Idioms | None = None
    context: _ContextGuards | None = None
    guard_words: dict[str, frozenset[GuardKind]] = field(default_factory=dict)  # word → kinds it may start
    guard_word_set: frozenset[str] = frozenset()
    guard_prefixes: tuple[tuple[str, GuardKind], ...] = ()
    guard_always: frozenset[GuardKind] = frozenset()  # kinds with a pattern: always possible
    through: dict[str, frozenset[str]] = field(default_factory=dict)  # negation guard id → words in its scope
    combos: list[_Combo] = field(default_factory=list)  # [[construct]] tables
    combo_anchors: dict[str, list[int]] = field(default_factory=dict)  # word → combos that need it
    combo_anchor_set: frozenset[str] = frozenset()
    combo_always: list[int] = field(default_factory=list)  # combos without a plain anchor word


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
                f"{content_dir / FALLBACK_LOCALE / 'safety'}: no English safety rules found; the "
                "English rules are the fallback for every locale, so add at least one rule file there"
            )
        _check_unique_ids(files, problems)
        normalizer = Normalizer(_vocabulary(files))
        locales = {name: _Locale(name) for name in sorted({f.locale for f in files})}
        word_lists = _word_lists(files, problems)
        for parsed in files:
            target = locales[parsed.locale]
            for spec in parsed.rules:
                _compile_rule(target, spec, parsed.locale, normalizer, problems, word_lists.get(parsed.locale, {}))
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
        if not isinstance(locale, str):
            locale = str(locale or "")
        chosen = self._chosen.get(locale)
        if chosen is None:
            chosen = self._choose_locales(locale)
            if len(self._chosen) < 256:  # locales are few; never grow without bound
                self._chosen[locale] = chosen
        return chosen

    def _choose_locales(self, locale: str) -> list[_Locale]:
        # Every language's rules assess every message (people write in the language of the moment,
        # not of their settings); the participant's own language goes first, and only picks the reply.
        language = (str(locale or "") or FALLBACK_LOCALE).replace("_", "-").split("-")[0].strip().lower()
        first = [self._locales[language]] if language in self._locales else []
        return first + [target for name, target in self._locales.items() if name != language]


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
        specs: list[RuleSpec | GuardSpec] = [*parsed.rules, *parsed.guards]
        for spec in specs:
            extra = [w for part in spec.parts for w in part] + list(spec.unless) if isinstance(spec, RuleSpec) else []
            for phrase in [*spec.phrases, *extra]:
                words.update(w.casefold() for w in re.findall(r"[^\W\d_]+", WORD_LIST_USE.sub(" ", phrase)))
        for listed in parsed.words.values():
            for phrase in listed:
                words.update(w.casefold() for w in re.findall(r"[^\W\d_]+", phrase))
    return words


def _where(spec: RuleSpec | GuardSpec, table: str, key: str, value: str) -> str:
    path = spec.where.rsplit(":", 1)[0]
    if isinstance(spec, RuleSpec) and table == "rule":
        table = spec.table
    return f"{path}:{spec.lines.line(table, spec.index, key, value)}"


def _word_lists(files: list[RuleFile], problems: list[str]) -> dict[str, dict[str, str]]:
    """Each locale's [words] lists, as the choice "(a|b|c)" a phrase's {name} stands for."""
    lists: dict[str, dict[str, str]] = {}
    seen: dict[tuple[str, str], Path] = {}
    for parsed in files:
        for name, words in parsed.words.items():
            if (parsed.locale, name) in seen:
                problems.append(f"{parsed.path}: word list '{name}' is already defined in {seen[parsed.locale, name]}; "
                                "give it another name")
                continue
            seen[parsed.locale, name] = parsed.path
            lists.setdefault(parsed.locale, {})[name] = "(" + "|".join(words) + ")"
    return lists


def _expand_words(phrase: str, lists: dict[str, str]) -> tuple[str, list[str]]:
    """The phrase with every {name} replaced by its word list; and the names that are not defined.

    Alone, {name} becomes the choice "(a|b)"; inside brackets ("({drug}|booze)"), its words join the
    choices there.
    """
    unknown: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name not in lists:
            unknown.append(name)
            return match.group(0)
        before = phrase[: match.start()]
        inside = max(before.rfind("("), before.rfind("[")) > max(before.rfind(")"), before.rfind("]"))
        return lists[name][1:-1] if inside else lists[name]

    return WORD_LIST_USE.sub(replace, phrase), unknown


def _compile_rule(
    target: _Locale, spec: RuleSpec, locale: str, normalizer: Normalizer, problems: list[str],
    word_lists: dict[str, str] | None = None,
) -> None:
    rule = Rule(spec.id, spec.category, spec.level, spec.raises, locale, spec.where, spec.notes, spec.construct,
                spec.detail, spec.first_person)
    rule_index = len(target.rules)
    target.rules.append(rule)
    if spec.parts:
        _compile_combo(target, spec, rule_index, normalizer, problems, word_lists or {})
        return
    for phrase in spec.phrases:
        expanded, unknown = _expand_words(phrase, word_lists or {})
        if unknown:
            problems.append(
                f"{_where(spec, 'rule', 'phrases', phrase)}: rule '{spec.id}': phrase {phrase!r} uses "
                f"{', '.join('{' + name + '}' for name in unknown)}, which no [words] table of this language defines; "
                "define it in a [words] table, or write the words out"
            )
            continue
        try:
            compiled = compile_phrase(expanded, normalizer.normalize)
        except PhraseError as error:
            problems.append(f"{_where(spec, 'rule', 'phrases', phrase)}: rule '{spec.id}': phrase {phrase!r}: {error}")
            continue
        # A phrase found through its anchor words lives only in word groups (compiled at the end).
        own = re.compile(compiled.spaced_regex) if compiled.prefixes else None
        regex_index = _add_regex(target, own, rule_index)
        target.bodies[regex_index] = compiled.body
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


def _compile_combo(
    target: _Locale, spec: RuleSpec, rule_index: int, normalizer: Normalizer, problems: list[str],
    word_lists: dict[str, str],
) -> None:
    """A [[construct]]: each part (a list of phrases) becomes one regex finding every start of it."""
    parts: list[re.Pattern[str]] = []
    needs: list[tuple[frozenset[str], tuple[str, ...]]] = []
    index_words: list[tuple[int, frozenset[str]]] = []  # (cost, words) of parts anchored by whole words

    def compiled(phrase: str, key: str):  # type: ignore[no-untyped-def]
        expanded, unknown = _expand_words(phrase, word_lists)
        where = _where(spec, "construct", key, phrase)
        if unknown:
            problems.append(
                f"{where}: construct '{spec.id}': phrase {phrase!r} uses "
                f"{', '.join('{' + name + '}' for name in unknown)}, which no [words] table of this language defines; "
                "define it in a [words] table, or write the words out"
            )
            return None
        try:
            return compile_phrase(expanded, normalizer.normalize)
        except PhraseError as error:
            problems.append(f"{where}: construct '{spec.id}': phrase {phrase!r}: {error}")
            return None

    for part in spec.parts:
        phrases = [c for phrase in part if (c := compiled(phrase, "all")) is not None]
        if len(phrases) != len(part):
            return
        bodies = "|".join(c.body for c in phrases)
        parts.append(re.compile(f" (?=({bodies}))"))
        words = frozenset(w for c in phrases for w in c.anchors)
        starts = tuple(sorted({p for c in phrases for p in c.prefixes}))
        needs.append((words, starts))
        if all(c.anchors and not c.prefixes for c in phrases):
            index_words.append((sum(word_cost(w) for w in words), words))
    unless_bodies = [c.body for phrase in spec.unless if (c := compiled(phrase, "unless")) is not None]
    if len(unless_bodies) != len(spec.unless):
        return
    unless = re.compile(f" (?:{'|'.join(unless_bodies)})") if unless_bodies else None
    combo_index = len(target.combos)
    target.combos.append(_Combo(rule_index, tuple(parts), tuple(needs), spec.window, unless, spec.sentences))
    if index_words:
        for word in min(index_words, key=lambda pair: pair[0])[1]:
            target.combo_anchors.setdefault(word, []).append(combo_index)
    else:
        target.combo_always.append(combo_index)


def _compile_pattern(
    spec: RuleSpec | GuardSpec, table: str, pattern: str, problems: list[str]
) -> re.Pattern[str] | None:
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


def _add_regex(target: _Locale, regex: re.Pattern[str] | None, rule_index: int) -> int:
    target.regexes.append(regex)
    target.owner.append(rule_index)
    return len(target.regexes) - 1


def _compile_guards(target: _Locale, specs: Sequence[GuardSpec], normalizer: Normalizer, problems: list[str]) -> None:
    by_kind: dict[GuardKind, list[tuple[GuardSpec, list[str]]]] = {}
    bodies: dict[GuardKind, list[tuple[GuardSpec, list[str]]]] = {}
    anchors: dict[GuardKind, set[str]] = {}
    prefixes: dict[GuardKind, set[str]] = {}
    always: set[GuardKind] = set()
    for spec in specs:
        pieces: list[str] = []
        body_list: list[str] = []
        for phrase in spec.phrases:
            try:
                compiled = compile_phrase(phrase, normalizer.normalize)
            except PhraseError as error:
                problems.append(
                    f"{_where(spec, 'guard', 'phrases', phrase)}: guard '{spec.id}': phrase {phrase!r}: {error}"
                )
                continue
            pieces.append(compiled.spaced_regex)
            body_list.append(compiled.body)
            anchors.setdefault(spec.kind, set()).update(compiled.anchors)
            prefixes.setdefault(spec.kind, set()).update(compiled.prefixes)
        for pattern in spec.patterns:
            regex = _compile_pattern(spec, "guard", pattern, problems)
            if regex is not None:
                pieces.append(regex.pattern)
                body_list.append(regex.pattern[1:])  # without the leading space
                always.add(spec.kind)
        if pieces:
            by_kind.setdefault(spec.kind, []).append((spec, pieces))
            bodies.setdefault(spec.kind, []).append((spec, body_list))
    idioms = by_kind.get(GuardKind.IDIOM, [])
    if idioms:
        ids = {f"g{number}": (spec.id, spec.categories) for number, (spec, _) in enumerate(idioms)}
        groups = [f"(?P<g{number}>{'|'.join(pieces)})" for number, (_, pieces) in enumerate(idioms)]
        target.idioms = _Idioms(re.compile("|".join(groups)), ids)
    target.context = _context_guards(bodies)
    words: dict[str, set[GuardKind]] = {}
    for kind, found in anchors.items():
        for word in found:
            words.setdefault(word, set()).add(kind)
    target.guard_words = {word: frozenset(kinds) for word, kinds in words.items()}
    target.guard_word_set = frozenset(words)
    target.guard_prefixes = tuple((p, kind) for kind, found in prefixes.items() for p in sorted(found))
    target.guard_always = frozenset(always)
    target.through = {
        spec.id: frozenset(w for word in spec.through for w in normalizer.normalize(word).split())
        for spec in specs
        if spec.through
    }


def _context_guards(bodies: dict[GuardKind, list[tuple[GuardSpec, list[str]]]]) -> _ContextGuards | None:
    names: dict[str, tuple[GuardKind, str, int, frozenset[Category]]] = {}
    groups: list[str] = []
    for kind in _KIND_ORDER:
        for spec, pieces in bodies.get(kind, []):
            name = f"c{len(names)}"
            names[name] = (kind, spec.id, spec.window, spec.categories)
            groups.append(f"(?P<{name}>{'|'.join(pieces)})")
    if not groups:
        return None
    sizes = {kind: max((spec.window for spec, _ in bodies.get(kind, [])), default=0) for kind in _KIND_ORDER}
    before = max(sizes.values())
    after = max(sizes[GuardKind.PAST], sizes[GuardKind.PRESENT])
    return _ContextGuards(re.compile(f" (?=(?:{'|'.join(groups)}))"), names, before, after)


def _finish_indexes(target: _Locale) -> None:
    target.anchor_set = frozenset(target.anchors)
    target.combo_anchor_set = frozenset(target.combo_anchors)
    target.secondary = frozenset(
        index
        for index, rule_index in enumerate(target.owner)
        if target.rules[rule_index].is_marker and target.rules[rule_index].level == Level.NONE
    )
    for word, indexes in target.anchors.items():
        primary = [i for i in indexes if i not in target.secondary]
        secondary = [i for i in indexes if i in target.secondary]
        target.word_groups[word] = (_word_group(target, primary), _word_group(target, secondary))
    if target.prefixes:
        target.prefix_regex = re.compile(f" ({trie_regex(target.prefixes)})")
    if target.glued:
        target.glued_regex = re.compile(trie_regex(target.glued))


def _word_group(target: _Locale, indexes: list[int]) -> _WordGroup | None:
    if not indexes:
        return None
    ordered = sorted(set(indexes), key=lambda i: (-target.rules[target.owner[i]].level, i))
    names = {f"r{i}": i for i in ordered}
    alternation = "|".join(f"(?P<r{i}>{target.bodies[i]})" for i in ordered)
    return _WordGroup(re.compile(f" (?=(?:{alternation}))"), names)


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
    found: list[_Raw] = []
    later: list[_WordGroup] = []  # markers that mean nothing alone ("tonight"): only next to a risk
    for word in token_set.intersection(target.anchor_set):
        primary, secondary = target.word_groups[word]
        if primary is not None:
            found += primary.matches(spaced, target.owner)
        if secondary is not None:
            later.append(secondary)
    candidates: set[int] = set(target.always)
    if target.prefix_regex is not None:
        for match in target.prefix_regex.finditer(spaced):
            candidates.update(target.prefixes[match.group(1)])
    for literal, regex_index in target.literals:
        if literal in spaced:
            candidates.add(regex_index)
    if candidates:
        found += _search(target, spaced, candidates - target.secondary)
    if target.glued_regex is not None:
        found += _glued_matches(target, text, tokens)
    if target.combos:
        found += _combo_matches(target, text, spaced, token_set)
    # Markers that mean nothing alone ("tonight") are looked for only next to a risk: any rule that
    # is not a marker, or a marker that pages alone (the means, a farewell).
    rules = target.rules
    if found and any(not rules[r.rule_index].is_marker or rules[r.rule_index].level >= Level.URGENT for r in found):
        for group in later:
            found += group.matches(spaced, target.owner)
        found += _search(target, spaced, candidates & target.secondary)
    return found


def _search(target: _Locale, spaced: str, candidates: Iterable[int]) -> list[_Raw]:
    found: list[_Raw] = []
    regexes, owner = target.regexes, target.owner
    for regex_index in candidates:
        regex = regexes[regex_index]
        if regex is None:
            continue
        first = regex.search(spaced)  # most candidates do not match: one call, no iterator
        if first is None:
            continue
        # In " " + text, a match starts at the space before the word: that index is the word's in text.
        found.append(_Raw(owner[regex_index], first.start(), first.end() - 1))
        found += [_Raw(owner[regex_index], m.start(), m.end() - 1) for m in regex.finditer(spaced, first.end())]
    return found


def _combo_matches(target: _Locale, text: str, spaced: str, token_set: set[str]) -> list[_Raw]:
    """[[construct]] matches: one phrase of each part, in any order, in one clause, within its window."""
    candidates = set(target.combo_always)
    for word in token_set.intersection(target.combo_anchor_set):
        candidates.update(target.combo_anchors[word])
    found: list[_Raw] = []
    for combo_index in sorted(candidates):
        combo = target.combos[combo_index]
        if not all(
            not words.isdisjoint(token_set) or any(w.startswith(starts) for w in token_set) if starts
            else not words.isdisjoint(token_set)
            for words, starts in combo.needs
        ):
            continue
        spans: list[list[tuple[int, int]]] = []
        for regex in combo.parts:
            part = [match.span(1) for match in itertools.islice(regex.finditer(spaced), _MAX_SPANS_PER_PART)]
            if not part:
                break
            spans.append(part)
        else:
            best = _closest(spaced, spans, combo.window, combo.sentences)
            if best is None:
                continue
            (start, end), gaps = best
            start, end = start - 1, end - 1  # in text, not in " " + text
            around = text if combo.sentences else _clause_around(text, start, end, combo.window)
            if combo.unless is not None and combo.unless.search(" " + around):
                continue
            if _negated_inside(target, gaps, target.rules[combo.rule_index].category):
                continue  # "i have no pills", "bought a rope but not for that"
            found.append(_Raw(combo.rule_index, start, end))
    return found


def _closest(
    spaced: str, spans: list[list[tuple[int, int]]], window: int, sentences: bool = False
) -> tuple[tuple[int, int], str] | None:
    """The shortest span holding one match of every part, without overlaps or a clause break; and
    the words between its parts (where a negation would be about the construct)."""
    best: tuple[int, int] | None = None
    best_gaps = ""
    for choice in itertools.product(*spans):
        ordered = sorted(choice)
        if any(ordered[i][1] > ordered[i + 1][0] for i in range(len(ordered) - 1)):
            continue  # one word cannot be two parts
        start, end = ordered[0][0], max(e for _, e in ordered)
        if best is not None and end - start >= best[1] - best[0]:
            continue
        inside = [word for word in spaced[start:end].split() if word != SENTENCE_END]
        if len(inside) > window or (not sentences and not _CLAUSE_BREAKS.isdisjoint(spaced[start:end].split())):
            continue
        best = (start, end)
        best_gaps = " ".join(spaced[a[1] : b[0]].strip() for a, b in itertools.pairwise(ordered))
    return None if best is None else (best, best_gaps.strip())


def _clause_around(text: str, start: int, end: int, window: int) -> str:
    """The match and up to `window` words of its sentence on each side."""
    before = " ".join(_words_before(text, start).split()[-window:])
    after = " ".join(_words_after(text, end).split()[:window])
    return f"{before} {text[start:end]} {after}".strip()


def _negated_inside(target: _Locale, inner: str, category: Category) -> bool:
    if target.context is None or not inner:
        return False
    return any(hit.kind == GuardKind.NEGATION for hit in target.context.hits(inner, category))


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


_CONTEXT_KINDS = frozenset({GuardKind.NEGATION, GuardKind.MEDIA, GuardKind.OTHER_PERSON, GuardKind.PAST})


def _apply_guards(target: _Locale, text: str, raw: list[_Raw], words: set[str]) -> list[Finding]:
    """Turn raw matches into findings, applying the guards of their locale."""
    # Which kinds of guard could apply anywhere in this message: most messages have none.
    possible = set(target.guard_always)
    for word in words.intersection(target.guard_word_set):
        possible |= target.guard_words[word]
    for prefix, kind in target.guard_prefixes:
        if kind not in possible and any(word.startswith(prefix) for word in words):
            possible.add(kind)
    idioms = target.idioms.find(text) if target.idioms is not None and GuardKind.IDIOM in possible else []
    context = target.context if not _CONTEXT_KINDS.isdisjoint(possible) else None
    findings: list[Finding] = []
    for match in _merge_overlapping(raw):
        rule = target.rules[match.rule_index]
        finding = Finding(rule, match.start, match.end, rule.level)
        findings.append(finding)
        for guard_id, categories, start, end in idioms:
            if start < match.end and match.start < end and rule.category in categories:
                finding.level, finding.guard = Level.NONE, guard_id
                break
        if finding.guard is None and context is not None:
            _apply_context(finding, context, text, possible, target.through)
    return findings


def _apply_context(
    finding: Finding, context: _ContextGuards, text: str, possible: set[GuardKind], scope: dict[str, frozenset[str]]
) -> None:
    """Negation, media, another person, past or recovery talk in the words around the phrase."""
    category = finding.rule.category
    before = " ".join(_words_before(text, finding.start).split()[-context.before_words :])
    hits = context.hits(before, category) if before else []
    speakers = [hit.start for hit in hits if hit.kind == GuardKind.SPEAKER]

    def near(hit: _Hit) -> bool:  # the guard starts within its window of words before the phrase
        return before.count(" ", hit.start) + 1 <= hit.window

    def speaks_after(hit: _Hit) -> bool:  # "not sure, but i want to die": the negation is not about it
        return any(start >= hit.end for start in speakers)

    def in_scope(hit: _Hit) -> bool:  # "ya no aguanto mas quiero morirme": another clause, out of scope
        through = scope.get(hit.guard_id)
        return through is None or all(word in through for word in before[hit.end :].split())

    marker = finding.rule.is_marker
    for hit in reversed(hits):  # the nearest first
        if hit.kind not in (GuardKind.NEGATION, GuardKind.MEDIA) or not near(hit) or speaks_after(hit):
            continue
        if hit.kind == GuardKind.NEGATION and not in_scope(hit):
            continue
        if marker and hit.kind == GuardKind.NEGATION and hit.end != len(before):
            continue  # "not tonight" negates the time; in "no despertar mañana" the "no" is not about it
        finding.level, finding.guard = Level.NONE, hit.guard_id
        return
    lowered = None
    others = [hit for hit in hits if hit.kind == GuardKind.OTHER_PERSON and near(hit)]
    if others and not speaks_after(others[-1]) and not finding.rule.first_person:
        lowered = others[-1].guard_id
    elif GuardKind.PAST in possible:
        lowered = _past(context, hits, before, text, finding)
    if lowered is not None:
        # Second-hand, past or recovery talk: concern at most, and a marker in such talk
        # ("i had a plan back then") does not make anything imminent.
        finding.guard = lowered
        finding.level = min(finding.level, Level.CONCERN)


def _past(context: _ContextGuards, hits: list[_Hit], before: str, text: str, finding: Finding) -> str | None:
    """Past or recovery talk around the phrase, and nothing saying it is happening now."""
    after = " ".join(_words_after(text, finding.end).split()[: context.after_words])
    after_hits = context.hits(after, finding.rule.category) if after else []

    def near_before(hit: _Hit) -> bool:
        return before.count(" ", hit.start) + 1 <= hit.window

    def near_after(hit: _Hit) -> bool:
        return after.count(" ", 0, hit.end) + 1 <= hit.window

    past = [hit for hit in hits if hit.kind == GuardKind.PAST and near_before(hit)]
    past += [hit for hit in after_hits if hit.kind == GuardKind.PAST and near_after(hit)]
    if not past:
        return None
    def inside_past(hit: _Hit, found: list[_Hit]) -> bool:  # "never again": its "again" is not now
        return any(p.kind == GuardKind.PAST and p.start <= hit.start and hit.end <= p.end for p in found)

    present = [hit for hit in hits if hit.kind == GuardKind.PRESENT and near_before(hit) and not inside_past(hit, hits)]
    present += [
        hit for hit in after_hits
        if hit.kind == GuardKind.PRESENT and near_after(hit) and not inside_past(hit, after_hits)
    ]
    if present:
        return None  # "i used to cut and i do it again": when unsure, the higher level
    return past[0].guard_id


# --- combining ----------------------------------------------------------------------------------


def _apply_markers(findings: list[Finding], text: str) -> None:
    """A plan, means or time next to a risk makes that risk imminent."""
    markers = [f for f in findings if f.rule.is_marker and f.guard is None]
    if not markers:
        return
    for finding in findings:
        if finding.guard is not None or finding.level == Level.NONE:
            continue
        if finding.rule.is_marker and finding.level < Level.URGENT:
            continue
        for marker in markers:
            threshold = marker.rule.raises
            if threshold is None or not threshold <= finding.level < Level.IMMINENT:
                continue
            # A marker that pages alone (the means, a farewell) is raised only by a time or a plan
            # ("got a rope, doing it tonight"), never by another marker of its own kind.
            if finding.rule.is_marker and (threshold < Level.URGENT or marker.rule.construct == finding.rule.construct):
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
    constructs: list[str] = []
    for finding in active:
        reasons.append(finding.rule.reason)
        if finding.raised_by:
            reasons.append(finding.raised_by)
        if finding.guard:
            reasons.append(f"guard:{finding.guard}")
        constructs.append(finding.rule.construct_reason)
    # Markers that raised a risk (a plan, means or time next to ideation) are constructs too.
    raisers = {f.raised_by for f in active if f.raised_by}
    constructs += [f.rule.construct_reason for f in findings if f.rule.is_marker and f.rule.reason in raisers]
    return Assessment(active[0].level, categories, tuple(dict.fromkeys(reasons + constructs)))
