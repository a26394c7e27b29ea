"""The vocabulary of a distress assessment, shared by every layer (rules, triggers, LLM).

One place decides what the levels mean: see ../shared/CLINICAL.md, "Distress".
"""

from __future__ import annotations

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

    def combine(self, other: Assessment) -> Assessment:
        """Merge two layers' opinions: the level can only go up, never down."""
        categories = tuple(dict.fromkeys(self.categories + other.categories))
        reasons = tuple(dict.fromkeys(self.reasons + other.reasons))
        return Assessment(max(self.level, other.level), categories, reasons)


NO_RISK = Assessment()
