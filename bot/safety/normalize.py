"""Normalization of participant text before distress rules are matched.

People in distress rarely type the way a rule file is written: "I dont wanna be here anymore",
"diiiie", "k i l l  m y s e l f", "su1c1de", "#wanttodie", "suicidárme", curly apostrophes,
emoji and zero-width characters. Everything is folded to one plain form so that a clinician can
write each rule once, in ordinary words:

- lowercase (casefold), accents stripped ("suicidárme" → "suicidarme", "daño" → "dano"),
  typographic quotes to ASCII, look-alike Cyrillic/Greek letters to Latin, fullwidth and
  "fancy" letters (NFKD) to plain ones;
- zero-width and control characters removed, so they cannot split a word;
- a few emoji that name a means (pill, knife, gun, rope) become that word; other emoji go;
- contractions expanded ("don't", "dont", "don t" → "do not"; "i'm", "im" → "i am");
- leetspeak inside words ("su1c1de", "k!ll", "d13" → "suicide", "kill", "die");
- spaced or dotted letters joined ("k i l l", "k.i.l.l" → "kill"); a joined run that spells a
  whole phrase ("killmyself") is matched by the rules' glued forms, like a hashtag;
- elongated letters shortened ("diiiie" → "die", "sooo" → "so", "killlll" → "kill"), guided by a
  vocabulary so that real double letters survive;
- common misspellings and texting forms ("suicde", "wanna", "gonna", "kms", "2nite");
- filler words that only intensify ("just", "really", "literally", "fucking") dropped, so that
  "i just really want to fucking die" is matched by the rule "want to die";
- URLs and @mentions dropped; punctuation becomes spaces, but a sentence end (". ! ? ;" before a
  space, or a new line) becomes the token "." so that phrases and guard windows stop there.

The result is words separated by single spaces. `normalize` accepts anything (empty text,
4096 characters, only emoji, mixed scripts, control characters, even non-strings) and never raises.
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from collections.abc import Iterable

log = logging.getLogger(__name__)

SENTENCE_END = "."

# --- character level -------------------------------------------------------------------------

_EMOJI_WORDS = {
    "\U0001f48a": " pills ",  # pill
    "\U0001f52a": " knife ",  # kitchen knife
    "\U0001f5e1": " knife ",  # dagger
    "\U0001f52b": " gun ",  # pistol
    "\U0001faa2": " rope ",  # knot
    "\u26b0": " coffin ",
    "\U0001faa6": " grave ",  # headstone
    "\U0001fa78": " blood ",  # drop of blood
    "\U0001f489": " needle ",  # syringe
}

_CONFUSABLES = {  # Cyrillic and Greek letters that look like Latin ones (lowercase after casefold)
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ѕ": "s",
    "ј": "j", "ԁ": "d", "к": "k", "м": "m", "т": "t", "ӏ": "l", "ɩ": "i", "ո": "n",
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x",
}  # fmt: skip

_CHAR_TABLE: dict[int, str | None] = {
    **{ord(c): "'" for c in "\u2018\u2019\u201a\u201b\u2032\u02bc\u0060\u00b4"},
    **{ord(c): '"' for c in "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb"},
    **{ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"},
    # Zero-width and invisible formatting characters: removed so they cannot split a word.
    **{ord(c): None for c in "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"},
    **{ord(k): v for k, v in _EMOJI_WORDS.items()},
    **{ord(k): v for k, v in _CONFUSABLES.items()},
    **{ord(k.upper()): v for k, v in _CONFUSABLES.items() if len(k.upper()) == 1},
}

_COMBINING_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Emoji, pictographs, arrows, dingbats, variation selectors, skin tones, tags, private use.
_SYMBOLS = re.compile(
    "[\u2190-\u21ff\u2300-\u23ff\u25a0-\u27bf\u2900-\u297f\u2b00-\u2bff\u3030\u303d\ufe00-\ufe0f"
    "\ue000-\uf8ff\U0001f000-\U0001faff\U000e0000-\U000e007f\U000f0000-\U0010ffff]"
)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

# --- token level -----------------------------------------------------------------------------

_URL = re.compile(r"(?:https?://|www\.)\S+")
_MENTION = re.compile(r"(?<![\w@])@\w+")

# Contractions written with an apostrophe. The same contractions typed with a space, as in
# lowercased punctuation-stripped text ("don t", "i m"), are joined in the token loop.
_APOSTROPHE_NOT = re.compile(r"\b(ca|wo|ai)?n't\b")
_APOSTROPHE_SUFFIX = re.compile(r"\b(\w+)'(m|re|ve|ll|d|s)\b")
_NOT_BASE = {"ca": "can", "wo": "will", "ai": "am"}
_NOT_STEMS = frozenset(
    """
    do does did is are was were has have had would should could must need might ca wo ai
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_SUFFIX = {"m": "am", "re": "are", "ve": "have", "ll": "will", "d": "would", "s": "is"}
_PRONOUNS_WITH = {  # which contractions each word takes ("it s" yes, "i s" no)
    "i": {"m", "ve", "ll", "d"},
    "you": {"re", "ve", "ll", "d"},
    "we": {"re", "ve", "ll", "d"},
    "they": {"re", "ve", "ll", "d"},
    **{word: {"s", "ll", "d"} for word in ["he", "she", "it", "that", "there", "what", "who", "where"]},
    **{word: {"s"} for word in ["everyone", "nobody", "everything", "nothing", "someone"]},
}
_SELF_OWNERS = frozenset(["my", "your", "him", "her", "them", "it", "our", "one", "ur"])  # "my self" → "myself"

# The common contractions, replaced as plain text (much faster than a regex); the rest below.
_CONTRACTIONS = (
    ("can't", "can not"), ("won't", "will not"), ("ain't", "is not"), ("n't", " not"),
    ("i'm", "i am"), ("i've", "i have"), ("i'll", "i will"), ("i'd", "i would"),
    ("you're", "you are"), ("we're", "we are"), ("they're", "they are"), ("it's", "it is"),
    ("that's", "that is"), ("what's", "what is"), ("there's", "there is"), ("let's", "let us"),
)  # fmt: skip

# A letter followed by a digit or symbol ("su1c1de", "d13", "k!ll", "w@nt"), or "$" before a letter.
# A number followed by letters ("3pm", "200mg") is a quantity, so it is not looked at.
_LEET_SPOT = re.compile(r"[a-z][0-9$@]|[a-z]![a-z]|\$[a-z]")
_QUANTITY = re.compile(r"\d+(?:st|nd|rd|th|am|pm|s|k|m|h|hr|hrs|x|mg|ml|mcg|g|kg|lb|lbs|yo|min|mins|ish|d|w|y)?")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s", "@": "a", "!": "i"})

_SENTINEL = "\ue000"  # a private-use character: safe as a marker because symbols were removed earlier
_FULL_STOP = re.compile(r"\.+(?=\s|$)")


def _punctuation_table() -> bytes:
    """ASCII punctuation to spaces, and sentence ends (! ? ; new line) to "|"."""
    table = bytearray(range(256))
    for char in '"#$%&()*+,-./:<=>@[\\]^_`{}~\t\x0b\x0c':
        table[ord(char)] = ord(" ")
    for char in "!?;|\n\r":
        table[ord(char)] = ord("|")
    return bytes(table)


# bytes.translate is several times faster than str.translate, and the text is ASCII by then
_ASCII_PUNCTUATION = _punctuation_table()
_OTHER_PUNCTUATION = re.compile("[^\\w \ue000]|_")
_ELONGATED = re.compile(r"[a-z]*([a-z])\1\1[a-z]*")
_RUN3 = re.compile(r"([a-z])\1\1+")
_RUN2 = re.compile(r"([a-z])\1+")

# Texting forms and common misspellings, word → replacement (may be several words or "").
_TOKEN_MAP: dict[str, str] = {
    # contractions typed without an apostrophe
    "im": "i am", "ive": "i have", "youre": "you are", "youve": "you have", "theyre": "they are",
    "theyve": "they have", "thats": "that is", "theres": "there is", "whats": "what is",
    "hes": "he is", "shes": "she is", "cannot": "can not", "wont": "will not", "dont": "do not",
    "cant": "can not", "didnt": "did not", "doesnt": "does not", "isnt": "is not", "wasnt": "was not",
    "werent": "were not", "arent": "are not", "havent": "have not", "hasnt": "has not",
    "hadnt": "had not", "wouldnt": "would not", "shouldnt": "should not", "couldnt": "could not",
    "aint": "is not", "mustnt": "must not", "neednt": "need not", "itll": "it will",
    "idk": "i do not know", "idc": "i do not care", "dunno": "do not know",
    # texting
    "wanna": "want to", "wana": "want to", "wan": "want", "gonna": "going to", "gona": "going to",
    "gunna": "going to", "finna": "going to", "tryna": "trying to", "gotta": "got to",
    "hafta": "have to", "lemme": "let me", "outta": "out of", "u": "you", "ur": "your",
    "cuz": "because", "coz": "because", "bc": "because", "cos": "because", "tho": "though",
    "urself": "yourself", "myselfs": "myself",
    "ppl": "people", "pls": "please", "plz": "please", "noone": "no one", "nobodys": "nobody is",
    "alot": "a lot", "rn": "right now", "tn": "tonight", "tonite": "tonight", "2nite": "tonight",
    "2night": "tonight", "2day": "today", "tmrw": "tomorrow", "tmr": "tomorrow", "tmrrw": "tomorrow",
    "2moro": "tomorrow", "2morrow": "tomorrow", "bf": "boyfriend", "gf": "girlfriend",
    "kms": "kill myself", "kmn": "kill me now", "unalive": "kill", "unaliving": "killing",
    "sewerslide": "suicide", "sui": "suicide", "oding": "overdosing", "byebye": "goodbye",
    # misspellings of words the rules need
    "suicde": "suicide", "sucide": "suicide", "suiside": "suicide", "suicied": "suicide",
    "suacide": "suicide", "suiciede": "suicide", "sucidal": "suicidal", "suicdal": "suicidal",
    "suisidal": "suicidal", "suicidial": "suicidal", "sucidial": "suicidal", "suicial": "suicidal",
    "suicidle": "suicidal", "suecide": "suicide", "suecidal": "suicidal", "suicidel": "suicidal",
    "kil": "kill", "kll": "kill", "kilng": "killing", "kiling": "killing", "killin": "killing",
    "myslef": "myself", "mysefl": "myself", "mysef": "myself", "msyelf": "myself", "myselg": "myself",
    "meself": "myself", "myselt": "myself", "myslf": "myself", "gon": "going to",
    "mself": "myself", "dieing": "dying", "dyin": "dying", "tierd": "tired",
    "tird": "tired", "anymor": "anymore", "nomore": "no more", "nevr": "never", "nvr": "never",
    "wnat": "want", "whant": "want", "wnt": "want", "liveing": "living", "livin": "living",
    "overdoes": "overdose", "overdosing": "overdosing", "selfharm": "self harm",
    "selfharming": "self harming", "hopless": "hopeless", "worthles": "worthless",
    "depresed": "depressed", "depresion": "depression", "lonley": "lonely",
    # Spanish texting
    "q": "que", "ke": "que", "xq": "porque", "pq": "porque", "porq": "porque", "tmb": "tambien",
    "tb": "tambien", "kiero": "quiero", "qiero": "quiero", "quero": "quiero", "kieres": "quieres",
    "aki": "aqui", "nadien": "nadie", "nd": "nada", "pa": "para", "x": "por", "xfa": "por favor",
    "porfa": "por favor", "vdd": "verdad", "toy": "estoy", "tas": "estas", "ta": "esta", "dsp": "despues",
    "bn": "bien", "kien": "quien", "k": "que", "mñn": "manana", "mñna": "manana",
    # fillers that only intensify: dropped so one rule covers "i (just) (really) want to die"
    "just": "", "really": "", "so": "", "sooo": "", "literally": "", "honestly": "", "actually": "",
    "seriously": "", "truly": "", "genuinely": "", "simply": "", "totally": "", "very": "",
    "fucking": "", "fuckin": "", "fml": "fuck my life", "iam": "i am", "imma": "i am going to",
    "ima": "i am going to", "merely": "", "freaking": "", "freakin": "", "frickin": "", "friggin": "",
    "effing": "", "damn": "", "bloody": "", "lowkey": "", "highkey": "", "kinda": "", "sorta": "",
    "tbh": "", "ngl": "", "fr": "", "af": "", "asf": "", "even": "", "legit": "", "deadass": "",
}  # fmt: skip

# Words whose double letters must survive shortening of elongations ("killlll" → "kill").
BASE_VOCABULARY = frozenset(
    """
    kill killing killed all will still feel feeling need see sleep sleeping bleed bleeding pill pills
    bottle off stuff too good goodbye goodbyes anymore tell well hell cutting hurt free worthless
    hopeless useless pointless helpless endless alone lonely empty tired please help die dying dead
    death done so no yes me my myself life live living leave gone forever never sorry suicide suicidal
    over end ending miss missing hate numb scared afraid sad cry crying morir muerte matarme quiero vida
    llorar ayuda sola solo nadie nunca cansado cansada vivir adios perdon
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def _squeeze(word: str) -> str:
    return _RUN2.sub(r"\1", word)


class Normalizer:
    """Folds text to the plain form the safety rules are written against.

    `vocabulary` lists words whose spelling (double letters) must survive when an elongated
    word is shortened; the rules add every word they use.
    """

    def __init__(self, vocabulary: Iterable[str] = ()) -> None:
        words = set(BASE_VOCABULARY)
        words.update(w for w in vocabulary if w.isalpha())
        self._vocabulary = frozenset(words)
        # squeezed form → real word; the shortest real word wins ("so" over "soo")
        squeezed: dict[str, str] = {}
        for word in sorted(words, key=len):
            squeezed.setdefault(_squeeze(word), word)
        self._squeezed = squeezed

    def normalize(self, text: object) -> str:
        """Return the matching form of `text`; never raises (falls back to a simpler form)."""
        if not isinstance(text, str):
            text = "" if text is None else _safe_str(text)
        try:
            return self._normalize(text)
        except Exception as error:  # a detector that crashes detects nothing
            log.error("normalize failed (%s); using a simpler form", type(error).__name__)
            try:
                return " ".join(_OTHER_PUNCTUATION.sub(" ", text.casefold()).split())
            except Exception:
                return ""

    __call__ = normalize

    def _normalize(self, text: str) -> str:
        if not text:
            return ""
        if "&" in text:
            text = html.unescape(text)
        if not text.isascii():
            text = text.translate(_CHAR_TABLE)
            text = unicodedata.normalize("NFKD", text)
            text = _COMBINING_MARKS.sub("", text)
            text = _SYMBOLS.sub(" ", text)
            text = text.translate(_CHAR_TABLE)  # NFKD can produce more look-alikes
        if not text.isprintable():
            text = _CONTROL.sub("", text)
        text = text.casefold()
        # Cheap substring checks first: most messages need none of these regexes.
        if "http" in text or "www." in text:
            text = _URL.sub(" ", text)
        if "@" in text:
            text = _MENTION.sub(" ", text)
        if "'" in text:
            for contraction, expansion in _CONTRACTIONS:
                if contraction in text:
                    text = text.replace(contraction, expansion)
            if "'" in text:
                text = _APOSTROPHE_NOT.sub(_expand_not, text)
                text = _APOSTROPHE_SUFFIX.sub(_expand_suffix, text)
                text = text.replace("'", "")
        if _LEET_SPOT.search(text):
            text = _unleet_text(text)
        if "." in text:
            text = _FULL_STOP.sub("|", text)
        if text.isascii():
            text = text.encode("ascii").translate(_ASCII_PUNCTUATION).decode("ascii")
        else:
            text = _OTHER_PUNCTUATION.sub(_punctuation_char, text)
        if "|" in text:
            text = text.replace("|", f" {_SENTINEL} ")
        if _RUN3.search(text):
            text = _ELONGATED.sub(self._shorten, text)
        return " ".join(_words(text.split()))

    def _shorten(self, match: re.Match[str]) -> str:
        word = match.group(0)
        twice = _RUN3.sub(r"\1\1", word)
        if twice in self._vocabulary:
            return twice
        known = self._squeezed.get(_squeeze(word))
        if known is not None:
            return known
        return _RUN3.sub(r"\1", word)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return ""


def _expand_not(match: re.Match[str]) -> str:
    base = match.group(1)
    return f" {_NOT_BASE[base]} not" if base else " not"


def _expand_suffix(match: re.Match[str]) -> str:
    word, suffix = match.group(1), match.group(2)
    if suffix in _PRONOUNS_WITH.get(word, ()):
        return f"{word} {_SUFFIX[suffix]}"
    return word + suffix  # a possessive ("mom's") or unknown: just drop the apostrophe


def _unleet_text(text: str) -> str:
    """Undo leetspeak in the words where a letter touches a digit or symbol ("su1c1de")."""
    spans: list[tuple[int, int]] = []
    for spot in _LEET_SPOT.finditer(text):
        start = max(text.rfind(" ", 0, spot.start()), text.rfind("\n", 0, spot.start())) + 1
        if spans and start < spans[-1][1]:
            continue  # same word as the previous spot
        end = len(text)
        for space in (" ", "\n"):
            found = text.find(space, spot.end())
            if 0 <= found < end:
                end = found
        spans.append((start, end))
    pieces, last = [], 0
    for start, end in spans:
        pieces += [text[last:start], _unleet(text[start:end])]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _unleet(token: str) -> str:
    core = token.rstrip("!.?,")  # "die!!" is shouting, not "diei"
    tail = token[len(core) :]
    if _QUANTITY.fullmatch(core) or not any("a" <= ch <= "z" for ch in core):
        return token  # "3am", "200mg", "2nd": numbers, not disguised letters
    return core.replace("11", "ll").translate(_LEET) + tail


def _punctuation_char(match: re.Match[str]) -> str:
    return "|" if match.group(0) in "!?;|\n\r" else " "


def _join_with_previous(previous: str, piece: str) -> str | None:
    """Rejoin a contraction typed with a space ("don t", "i m") or a split "my self"."""
    if piece == "t":
        stem = previous[:-1]
        if previous.endswith("n") and stem in _NOT_STEMS:
            return f"{_NOT_BASE.get(stem, stem)} not"
        return None
    if piece in ("self", "selves"):
        return previous + piece if previous in _SELF_OWNERS else None
    suffix = _SUFFIX.get(piece)
    if suffix is not None and piece in _PRONOUNS_WITH.get(previous, ()):
        return f"{previous} {suffix}"
    return None


def _words(pieces: list[str]) -> list[str]:
    """Second pass over whitespace pieces: contractions, spaced letters, word map, sentences."""
    if _SPECIAL.isdisjoint(pieces):  # the usual case: only the word map applies
        return [word for piece in pieces if (word := _TOKEN_MAP.get(piece, piece))]
    words: list[str] = []
    run: list[str] = []  # consecutive single letters, maybe a spaced-out word ("k i l l")

    def flush() -> None:
        joined = "".join(run)
        pieces = [_TOKEN_MAP.get(joined, joined)] if len(run) >= 3 else [_TOKEN_MAP.get(c, c) for c in run]
        words.extend(piece for piece in pieces if piece)
        run.clear()

    for piece in pieces:
        if piece in _JOINERS or piece == _SENTINEL or len(piece) == 1:
            if piece == _SENTINEL:
                if run:
                    flush()
                if words and words[-1] != SENTENCE_END:
                    words.append(SENTENCE_END)
                continue
            if piece in _JOINERS:
                previous = run[-1] if run else (words[-1] if words else "")
                joined = _join_with_previous(previous, piece)
                if joined is not None:
                    if run:
                        run.pop()
                    else:
                        words.pop()
                    if run:
                        flush()
                    words.append(_TOKEN_MAP.get(joined, joined))
                    continue
            if len(piece) == 1 and "a" <= piece <= "z":
                run.append(piece)
                continue
        if run:
            flush()
        mapped = _TOKEN_MAP.get(piece, piece)
        if mapped:
            words.append(mapped)
    if run:
        flush()
    if words and words[-1] == SENTENCE_END:
        words.pop()
    return words


_JOINERS = frozenset({"t", "self", "selves", *_SUFFIX})
# Tokens that need the slow path of _words. "i" and "a" alone are ordinary words; a spaced-out
# word ("k i l l") always has another single letter in it.
_SPECIAL = frozenset({*_JOINERS, _SENTINEL, *(c for c in "bcdefghjklmnopqrstuvwxyz")})


_DEFAULT = Normalizer()


def normalize(text: object) -> str:
    """Normalize `text` with the built-in vocabulary (see the module docstring)."""
    return _DEFAULT.normalize(text)
