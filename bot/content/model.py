"""The typed content items: psychoeducation snippets and skill exercises.

Everything here is frozen: a loaded library is shared by every handler and replaced as a whole
on reload, never edited in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

DEFAULT_LOCALE = "en"  # the fallback when a translation is missing

# Ids travel in button callback data (`ex:<exercise_id>:<step_id>:<value>`), so they are kept to
# characters that need no escaping and never contain the ':' separator.
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class Topic(StrEnum):
    CONDITIONS = "conditions"
    RECOVERY = "recovery"
    COPING = "coping"
    STRESS = "stress"
    RELAPSE_PREVENTION = "relapse_prevention"
    MINDFULNESS = "mindfulness"
    RELAXATION = "relaxation"
    EMOTION_REGULATION = "emotion_regulation"
    ASSERTIVENESS = "assertiveness"
    CONFLICT_RESOLUTION = "conflict_resolution"
    COMMUNICATION = "communication"
    SAFETY = "safety"


class Track(StrEnum):
    """The starter content's tracks. A program names its own in config.toml (`[content] tracks`);
    while it names none, content is checked against these and every snippet goes to everyone."""

    MENTAL_HEALTH = "mental_health"
    SUBSTANCE_USE = "substance_use"


STARTER_TRACKS: tuple[str, ...] = tuple(t.value for t in Track)


def known_tracks(configured: tuple[str, ...]) -> tuple[str, ...]:
    """The track names content may use: the program's (`[content] tracks`), else the starter ones."""
    return configured or STARTER_TRACKS


class Status(StrEnum):
    DRAFT = "draft"  # delivered only when the program allows drafts
    REVIEWED = "reviewed"


class StepKind(StrEnum):
    TEXT = "text"  # a message and a button to go on
    PAUSE = "pause"  # a message, then the next step after `seconds`
    QUESTION = "question"  # a message with choice buttons; a choice may branch
    FREE_TEXT = "free_text"  # a prompt; the participant's typed answer is stored under `key`
    REFLECTION = "reflection"  # the closing message: the exercise ends here


@dataclass(frozen=True)
class ContentMeta:
    """The front matter shared by snippets and exercises."""

    id: str
    locale: str
    path: Path
    title: str
    topic: Topic
    tracks: tuple[str, ...]  # empty: for every track
    author: str
    clinical_reviewer: str
    reviewed_on: date | None  # None only in drafts (a reviewed file without it is an error)
    version: str
    status: Status
    week: int | None = None  # the program week from which it may be sent (None: any week)
    order: int | None = None  # position within a week or topic listing
    tags: tuple[str, ...] = ()
    reading_minutes: int | None = None
    id_line: int = 1  # where `id = ...` is in the file, for problems that concern the whole file

    def for_track(self, track: str | None) -> bool:
        """Whether a participant on `track` gets this item (None: no track, everything goes)."""
        return track is None or not self.tracks or track in self.tracks

    @property
    def sort_key(self) -> tuple[int, int, str, str]:
        # Items without a week come first (relevant from the start), then by order and title.
        return (self.week or 0, self.order if self.order is not None else 0, self.title.casefold(), self.id)


@dataclass(frozen=True)
class Message:
    """One message of a snippet as authored (Markdown), and the file line it starts on."""

    markdown: str
    line: int


@dataclass(frozen=True)
class Snippet:
    """A psychoeducation snippet: one or more short messages, one idea each."""

    meta: ContentMeta
    messages: tuple[Message, ...]

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def title(self) -> str:
        return self.meta.title

    @property
    def locale(self) -> str:
        return self.meta.locale


@dataclass(frozen=True)
class Choice:
    """A button of a question step. `value` is what is stored; `next` optionally branches."""

    label: str
    value: str
    next: str | None = None
    line: int = 0


@dataclass(frozen=True)
class Step:
    """One step of an exercise. Which fields are used depends on `kind` (see content/FORMAT.md)."""

    id: str
    kind: StepKind
    markdown: str
    line: int
    next: str | None = None  # overrides "the following step in the file"
    seconds: int | None = None  # pause
    key: str | None = None  # free_text (required) and question (optional): where the answer goes
    button: str | None = None  # label of the "go on" button (text; optional "skip" on pause/free_text)
    choices: tuple[Choice, ...] = ()  # question
    columns: int = 1  # question: buttons per row

    def choice(self, value: str) -> Choice | None:
        return next((c for c in self.choices if c.value == value), None)


@dataclass(frozen=True)
class Exercise:
    """An interactive skill exercise: ordered steps, run by the flow engine from the first one."""

    meta: ContentMeta
    steps: tuple[Step, ...]
    continue_label: str | None = None  # default label of text steps' button

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def title(self) -> str:
        return self.meta.title

    @property
    def locale(self) -> str:
        return self.meta.locale

    @property
    def first_step(self) -> Step:
        """Where every run of the exercise starts."""
        return self.steps[0]

    def step(self, step_id: str) -> Step | None:
        """The step with this id, or None (for example a stale button from an older version)."""
        return next((s for s in self.steps if s.id == step_id), None)

    def _following(self, step: Step) -> str | None:
        index = next(i for i, s in enumerate(self.steps) if s.id == step.id)
        return self.steps[index + 1].id if index + 1 < len(self.steps) else None

    def next_step_id(self, step: Step, value: str | None = None) -> str | None:
        """The step after `step` (for a question: after choosing `value`); None when the exercise ends.

        The one definition of the flow: the engine and the validator both use it. A reflection
        closes the exercise; otherwise a choice's `next`, then the step's `next`, then the
        following step in the file.
        """
        if step.kind is StepKind.REFLECTION:
            return None
        if step.kind is StepKind.QUESTION and value is not None:
            choice = step.choice(value)
            if choice is not None and choice.next:
                return choice.next
        return step.next or self._following(step)

    def successors(self, step: Step) -> set[str]:
        """Every step id that can come right after `step`."""
        if step.kind is StepKind.QUESTION and step.choices:
            found = {self.next_step_id(step, c.value) for c in step.choices}
        else:
            found = {self.next_step_id(step)}
        return {s for s in found if s is not None}


ContentItem = Snippet | Exercise
