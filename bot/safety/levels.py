"""The vocabulary of a distress assessment, shared by every layer (rules, triggers, LLM).

One place decides what the levels mean: see ../shared/CLINICAL.md, "Distress".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Level(IntEnum):
    """How urgently a human must act. Ordered: a higher value is more urgent."""

    NONE = 0  # nothing to act on
    CONCERN = 1  # recorded, shown in the caseload and digest; supportive reply; nobody paged
    URGENT = 2  # crisis reply and an alert to the clinician (default 30 min to acknowledge)
    IMMINENT = 3  # plan, means, time or an act in progress: crisis reply leads with 911/988

    @classmethod
    def parse(cls, name: str) -> Level:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            valid = ", ".join(level.name.lower() for level in cls)
            raise ValueError(f"unknown level {name!r}; use one of: {valid}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class Category(StrEnum):
    SUICIDE = "suicide"
    SELF_HARM = "self_harm"
    HARM_TO_OTHERS = "harm_to_others"
    OVERDOSE_RELAPSE = "overdose_relapse"
    ABUSE_UNSAFE = "abuse_unsafe"
    MEDICAL = "medical"


class Construct(StrEnum):
    """What a rule recognises, in the clinical terms of C-SSRS and SAFE-T (CLINICAL.md, "Distress").

    A rule names one; an alert shows the constructs found ("plan · means: medication · time: soon"),
    never the participant's words.
    """

    PASSIVE_IDEATION = "passive_ideation"  # wish to be dead, burden, better off without me
    ACTIVE_IDEATION = "active_ideation"  # thoughts of killing oneself
    INTENT = "intent"  # decided, going to
    PLAN = "plan"  # how or where
    TIME = "time"  # when: tonight, after everyone sleeps
    MEANS = "means"  # has or is getting the means: pills, rope, gun, a bridge
    PREPARATORY = "preparatory"  # giving things away, notes, a will, looking up doses
    FAREWELL = "farewell"  # goodbyes and last words
    ACT = "act"  # an act in progress or just done
    HISTORY = "history"  # a past attempt or self-injury (recovery talk lowers it)
    SELF_INJURY = "self_injury"  # non-suicidal self-injury: cutting, burning, hitting, purging
    SUBSTANCE_DANGER = "substance_danger"  # using alone, fentanyl, mixing depressants, lost tolerance
    HARM_TO_OTHERS = "harm_to_others"  # first-person intent to hurt someone
    UNSAFE_AT_HOME = "unsafe_at_home"  # abuse, threatened, hiding, locked in
    MEDICAL = "medical"  # seizures, DTs, chest pain, throat swelling, overdose signs
    DISTRESS = "distress"  # distress without danger: hopelessness, cravings with intent to use
    OTHER_PERSON = "other_person"  # risk in someone the participant knows

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


CONSTRUCT_PREFIX = "construct:"


def construct_reason(construct: Construct, detail: str = "") -> str:
    """The reason an assessment carries for a construct: "construct:means:medication"."""
    return f"{CONSTRUCT_PREFIX}{construct.value}" + (f":{detail}" if detail else "")


def constructs_in(reasons: Iterable[str]) -> list[tuple[str, str]]:
    """(construct, detail) of each construct reason, in order: ("means", "medication")."""
    found = []
    for reason in reasons:
        if reason.startswith(CONSTRUCT_PREFIX):
            name, _, detail = reason[len(CONSTRUCT_PREFIX) :].partition(":")
            found.append((name, detail))
    return found


def describe_constructs(reasons: Iterable[str]) -> str:
    """The constructs among `reasons`, for a clinician: "plan · means: medication · time: soon"."""
    labels: list[str] = []
    for name, detail in constructs_in(reasons):
        label = name.replace("_", " ") + (f": {detail.replace('_', ' ')}" if detail else "")
        if label not in labels:
            labels.append(label)
    return " · ".join(labels)


@dataclass(frozen=True)
class Assessment:
    """The result of assessing one text or one set of answers.

    `reasons` name the rule or trigger that fired (e.g. "rule:en/suicide.toml:want_to_die",
    "trigger:phq9_item9"), never the participant's words.
    """

    level: Level = Level.NONE
    categories: tuple[Category, ...] = ()
    reasons: tuple[str, ...] = field(default=())

    @property
    def flagged(self) -> bool:
        return self.level >= Level.CONCERN

    @property
    def constructs(self) -> str:
        """What was found, in clinical terms ("plan · means: medication"); "" when nothing was."""
        return describe_constructs(self.reasons)

    def combine(self, other: Assessment) -> Assessment:
        """Merge two layers' opinions: the level can only go up, never down."""
        categories = tuple(dict.fromkeys(self.categories + other.categories))
        reasons = tuple(dict.fromkeys(self.reasons + other.reasons))
        return Assessment(max(self.level, other.level), categories, reasons)


NO_RISK = Assessment()
