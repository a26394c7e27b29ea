"""The phrase notation of the safety rule files, compiled to regular expressions.

A phrase is a few words, matched as whole words against normalized text (see normalize.py), so
case, accents, apostrophes, contractions and filler words ("just", "really") do not matter:

    want to die              the words in this order
    suicid*                  a word starting with "suicid": suicide, suicidal, suicidally
    (want|need|wish) to die  one of the words (or word groups) in the brackets
    [still] want to die      an optional word (or words)
    want ... die             up to four other words in between

Phrases are cheap to check because each one names at least one word that must be present (its
"anchor": the least common word it needs). A message is only tested against the phrases whose
anchor it contains, so most benign messages are rejected after a dictionary look-up.
Regular-expression `patterns` are skipped unless the message contains their longest plain text.
Filler words are dropped from every message, so a phrase may not use them ("just die" is an
error, not a silent "die").
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

GAP = "..."
MAX_GAP_WORDS = 4
_MAX_GLUED = 64  # forms a phrase may expand to before its glued forms are skipped
_MIN_GLUED_LENGTH = 8  # shorter glued forms ("killme") occur inside ordinary words

# How common a word is, roughly: an anchor should be a word most messages do not contain.
# Function words are in almost every message; the common words below are in many.
NEARLY_ALWAYS = frozenset(
    """
    i to a the and it is you my me of in that this for on be do not have am are was with
    """.split()  # noqa: SIM905 - a word list reads better as text
)
VERY_COMMON = frozenset(
    """
    i me my myself you your we us our he she him her his it its they them their a an the and or but if
    so to of in on at for with from by as is am are was were be been being do does did not no have has
    had will would should could can may might must going go get got want this that these those there
    here what when where why how all any some just up out about like one now then too also only very
    feel know think y o a el la los las un una de del en que no me mi yo te tu se lo le es ser estar soy
    estoy por para con sin mas ya muy pero como cuando
    """.split()  # noqa: SIM905 - a word list reads better as text
)
COMMON = frozenset(
    """
    never ever even again still more most over into than back way thing things time day today really
    make made let can cant could see ok okay better good bad last used sorry tomorrow tonight weekend
    week yes yeah well right left new old first take took give gave come came say said tell told look
    need needs needed people life work home night morning after before while because until since every
    each other another much many few lot something anything nothing everything someone somebody anyone
    everyone nobody off find found keep kept try tried call called talk talked meeting group session
    later soon always sometimes lol who which am pm hi hello hey thanks thank please help love hate live
    living alone end todo nada nadie vida hoy ahora siempre nunca quiero tengo hacer
    """.split()  # noqa: SIM905 - a word list reads better as text
)


class PhraseError(ValueError):
    """A phrase that does not follow the notation; the message says what to write instead."""


@dataclass(frozen=True)
class CompiledPhrase:
    """A phrase turned into a regex over normalized text, with the words that must be present."""

    body: str  # the regex without the word-start check; `regex` adds it
    anchors: frozenset[str]  # one of these words must be in the message...
    prefixes: frozenset[str]  # ...or a word starting with one of these
    glued: tuple[str, ...]  # the phrase written without spaces, e.g. "killmyself" ("#killmyself")

    @property
    def regex(self) -> str:
        """Matches the phrase from the start of a word in normalized text."""
        return r"(?<!\w)" + self.body

    @property
    def spaced_regex(self) -> str:
        """The same, for text that starts with a space: a literal first character is faster to find."""
        return " " + self.body


@dataclass(frozen=True)
class _Slot:
    alternatives: tuple[tuple[str, ...], ...]  # each alternative is a sequence of words
    optional: bool = False
    gap: bool = False


# A gap never skips a negation: "i am not ... alone" must not match "i am ... alone".
_GAP_STOPS = r"(?:not|never|no|nobody|nothing|nor|without)(?!\w)"
_ODD_CHARACTER = re.compile(r"[^\w'’\-*]")
_TOKEN = re.compile(r"\.\.\.|[()\[\]|]|[^\s()\[\]|]+")


_REGEX_OPTIONAL = re.compile(r"\(([^()\[\]]*)\)\?")


def compile_phrase(phrase: str, normalize: Callable[[str], str]) -> CompiledPhrase:
    """Compile one phrase of a rule file. Raises PhraseError with a message for the author."""
    # "(a|b)?" and "(word )?" as a regular expression would write them mean "[a|b]" here.
    phrase = _REGEX_OPTIONAL.sub(lambda m: f" [{m.group(1).strip()}] ", phrase)
    slots = _parse(phrase, normalize)
    if not any(not slot.optional and not slot.gap for slot in slots):
        raise PhraseError("the phrase needs at least one word that is not optional")
    if slots[0].gap or slots[-1].gap:
        raise PhraseError(f"'{GAP}' must stand between two words")
    anchors, prefixes = _choose_anchor(slots)
    return CompiledPhrase(_to_regex(slots), anchors, prefixes, _glued_forms(slots))


def _parse(phrase: str, normalize: Callable[[str], str]) -> list[_Slot]:
    slots: list[_Slot] = []
    pieces = _TOKEN.findall(phrase)
    position = 0
    while position < len(pieces):
        piece = pieces[position]
        if piece == GAP:
            slots.append(_Slot((), gap=True))
            position += 1
        elif piece in ("(", "["):
            closing = ")" if piece == "(" else "]"
            try:
                end = pieces.index(closing, position + 1)
            except ValueError:
                raise PhraseError(f"'{piece}' is not closed with '{closing}'") from None
            inner = pieces[position + 1 : end]
            if any(t in ("(", "[", GAP) for t in inner):
                raise PhraseError("brackets cannot contain other brackets or '...'")
            alternatives = _split_alternatives(inner, normalize)  # [a|b]: one of them, or neither
            optional = piece == "[" or any(not alt for alt in alternatives)
            kept = tuple(alt for alt in alternatives if alt)
            if kept:
                slots.append(_Slot(kept, optional=optional))
            position = end + 1
        elif piece in (")", "]", "|"):
            raise PhraseError(f"unexpected '{piece}': brackets are (a|b) and [optional]")
        else:
            words = _normalize_words([piece], normalize)
            if not words:
                raise PhraseError(_ignored(piece))
            slots.extend(_Slot(((word,),)) for word in words)
            position += 1
    if not slots:
        raise PhraseError("the phrase is empty")
    return slots


def _split_alternatives(pieces: list[str], normalize: Callable[[str], str]) -> list[tuple[str, ...]]:
    alternatives: list[tuple[str, ...]] = []
    current: list[str] = []
    for piece in [*pieces, "|"]:
        if piece == "|":
            words = _normalize_words(current, normalize)
            if current and not words:
                raise PhraseError(_ignored(" ".join(current)))
            alternatives.append(tuple(words))
            current = []
        else:
            current.append(piece)
    return alternatives


def _ignored(text: str) -> str:
    return (
        f"'{text}' is ignored in matching (filler words like 'just', 'really', 'so' are dropped "
        "from every message); leave it out"
    )


def _normalize_words(pieces: list[str], normalize: Callable[[str], str]) -> list[str]:
    """Normalize words as participant text is normalized; keep a trailing '*' (prefix)."""
    words: list[str] = []
    for piece in pieces:
        if _ODD_CHARACTER.search(piece):
            raise PhraseError(
                f"unexpected character in '{piece}': write words, (a|b) for choices, [word] for an "
                f"optional word, '...' for a gap and word* for a word start"
            )
        star = piece.endswith("*")
        base = piece.rstrip("*")
        if star and not base:
            raise PhraseError("'*' must follow the start of a word, e.g. suicid*")
        if star and not re.fullmatch(r"\w+", _fold(base)):
            raise PhraseError(f"'{piece}': '*' only works on a plain word")
        if "*" in base:
            raise PhraseError(f"'{piece}': '*' may only end a word")
        normalized = (_fold(base) if star else normalize(base)).split()
        if not normalized:
            # "just overdosed" would silently become "overdosed": say so rather than change meaning
            raise PhraseError(_ignored(piece))
        if star:
            normalized[-1] += "*"
        words.extend(normalized)
    return words


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _word_regex(word: str) -> str:
    if word.endswith("*"):
        return re.escape(word[:-1]) + r"\w*"
    return re.escape(word)


def _alternative_regex(words: tuple[str, ...]) -> str:
    return " ".join(_word_regex(w) for w in words)


def _to_regex(slots: list[_Slot]) -> str:
    parts: list[str] = []
    need_space = False
    for slot in slots:
        if slot.gap:
            parts.append(rf"(?: (?!{_GAP_STOPS})[^\s.]+){{0,{MAX_GAP_WORDS}}}")
            continue
        body = "|".join(_alternative_regex(alt) for alt in slot.alternatives)
        if len(slot.alternatives) > 1:
            body = f"(?:{body})"
        if slot.optional:
            parts.append(f"(?: {body})?" if need_space else f"(?:{body} )?")
        else:
            parts.append(f" {body}" if need_space else body)
            need_space = True
    return "".join(parts) + r"(?!\w)"


def word_cost(word: str) -> int:
    """How many messages a word is likely to appear in, roughly: lower is a better anchor."""
    base = word.rstrip("*")
    if base in NEARLY_ALWAYS:
        return 1000
    if base in VERY_COMMON:
        return 100
    if base in COMMON or len(base) <= 3:
        return 10
    return 1


def _choose_anchor(slots: list[_Slot]) -> tuple[frozenset[str], frozenset[str]]:
    """The mandatory slot whose words are rarest: a message must contain one of them to match."""
    best: tuple[int, set[str]] | None = None
    for slot in slots:
        if slot.optional or slot.gap:
            continue
        picks = {min(alt, key=word_cost) for alt in slot.alternatives}  # each choice's rarest word
        cost = sum(word_cost(word) for word in picks)
        if best is None or cost < best[0]:
            best = (cost, picks)
    assert best is not None  # compile_phrase checked there is a mandatory slot
    anchors = frozenset(word for word in best[1] if not word.endswith("*"))
    prefixes = frozenset(word[:-1] for word in best[1] if word.endswith("*"))
    return anchors, prefixes


def _glued_forms(slots: list[_Slot]) -> tuple[str, ...]:
    """The phrase without spaces ("killmyself"), for hashtags and spaced-out letters."""
    if any(slot.gap or any(w.endswith("*") for alt in slot.alternatives for w in alt) for slot in slots):
        return ()
    choices = [list(slot.alternatives) + ([()] if slot.optional else []) for slot in slots]
    count = 1
    for choice in choices:
        count *= len(choice)
    if count > _MAX_GLUED:
        return ()
    forms = set()
    for combination in itertools.product(*choices):
        words = [word for alt in combination for word in alt]
        glued = "".join(words)
        if len(words) >= 2 and len(glued) >= _MIN_GLUED_LENGTH:
            forms.add(glued)
    return tuple(sorted(forms))


# --- regular-expression patterns ----------------------------------------------------------------

try:  # the parser behind `re`; private, so anchoring is an optimization that may switch off
    from re import _constants as _sre_constants  # type: ignore[attr-defined]
    from re import _parser as _sre_parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other Python versions
    _sre_parser = None  # type: ignore[assignment]
    _sre_constants = None  # type: ignore[assignment]


def pattern_literal(pattern: str) -> str | None:
    """The longest piece of plain text every match of `pattern` contains (3+ characters), if any.

    A message without it cannot match, so the pattern is skipped after one substring test.
    """
    if _sre_parser is None:
        return None
    try:
        items = list(_sre_parser.parse(pattern))
    except Exception:
        return None
    best, run = "", ""
    for op, value in items:
        if op is _sre_constants.LITERAL:
            run += chr(value)  # type: ignore[arg-type]
            continue
        best, run = max(best, run, key=len), ""
    best = max(best, run, key=len)
    return best if len(best.strip()) >= 3 else None


def impossible_literals(pattern: str) -> list[str]:
    """Literal characters in `pattern` that never occur in normalized text (e.g. 'A', 'á', "'")."""
    if _sre_parser is None:
        return []
    try:
        parsed = _sre_parser.parse(pattern)
    except Exception:
        return []
    bad: list[str] = []
    for char in _literals(list(parsed)):
        if not _can_occur(char) and char not in bad:
            bad.append(char)
    return bad


def _literals(items: list[tuple[object, object]]) -> list[str]:
    c = _sre_constants
    found: list[str] = []
    for op, value in items:
        if op is c.LITERAL:
            found.append(chr(value))  # type: ignore[arg-type]
        elif op is c.SUBPATTERN:
            found += _literals(list(value[-1]))  # type: ignore[index]
        elif op is c.BRANCH:
            for branch in value[1]:  # type: ignore[index]
                found += _literals(list(branch))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            found += _literals(list(value[2]))  # type: ignore[index]
        elif op in (c.ASSERT, c.ASSERT_NOT):
            found += _literals(list(value[1]))  # type: ignore[index]
    return found


def _can_occur(char: str) -> bool:
    if char in " .":
        return True
    if char.isascii():
        return char.isdigit() or ("a" <= char <= "z")
    return char.isalpha() and char == _fold(char)


def trie_regex(words: Iterable[str]) -> str:
    """One regex alternation for many literal strings, factored by common prefixes.

    "killmyself|killme" becomes "kill(?:m(?:yself|e))": at each position the regex engine follows
    one branch instead of trying every string, which keeps a search over hundreds of forms fast.
    """
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _trie_to_regex(trie)


def _trie_to_regex(node: dict) -> str:  # type: ignore[type-arg]
    ends = "" in node
    branches = [re.escape(char) + _trie_to_regex(child) for char, child in sorted(node.items()) if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if ends:
        return f"(?:{body})?"
    return body
