"""Typed settings from config.toml plus the environment.

Every setting has a default here and is documented in config.toml. Secrets come only from the
environment (BOT_TOKEN, DATABASE_URL, IOPBOT_WEBHOOK_SECRET, IOPBOT_DATA_KEY, OPENAI_API_KEY).
A bad value stops the program at start with a message naming the key and what to do.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ConfigError(Exception):
    """A setting is missing or wrong. The message names the file, the key and the fix."""


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
# The languages the bot speaks (content/<locale>/ui.toml ships for each).
LOCALES = ("en", "es")


@dataclass(frozen=True)
class TriggerThresholds:
    """Where structured answers become a signal; a program may change these in config.toml."""

    low_mood: int = 2  # mood (0–10) at or below this → concern
    high_craving: int = 8  # craving (0–10) at or above this → concern
    low_mood_run_days: int = 3  # this many low moods in a row → concern...
    low_mood_run_max: int = 3  # ...where low means at or below this


@dataclass(frozen=True)
class ProgramSettings:
    # The program's name, on the consent screen and in the goodbye. `iopbot run` refuses to start
    # without one: participants must never see a placeholder.
    name: str = ""
    default_locale: str = "en"
    default_timezone: str = "America/New_York"
    # The program's own after-hours number, shown in every crisis reply.
    after_hours_phone: str = ""
    consent_version: str = "2026-11-01"
    # Data kept about a participant who consented: shown on the consent screen and stored (42 CFR Part 2).
    consent_scope: str = "check-in answers, messages to the bot, session attendance"


# A process's role (`[telegram] mode`, or `iopbot run --mode`): bot/db/worker_models.py WorkerMode.
TELEGRAM_MODES = ("polling", "webhook", "worker")


@dataclass(frozen=True)
class TelegramSettings:
    api_base: str = "https://api.telegram.org"
    # Used to print invite links; when empty, `iopbot invite` asks Telegram (getMe).
    bot_username: str = ""
    mode: str = "polling"  # polling | webhook | worker (schedule only); `iopbot run --mode` overrides it
    webhook_url: str = ""
    webhook_listen_host: str = "127.0.0.1"
    webhook_listen_port: int = 8443
    webhook_path: str = "/telegram/webhook"
    polling_timeout_seconds: int = 25
    request_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite+aiosqlite:///iopbot.db"
    echo: bool = False


@dataclass(frozen=True)
class EnrollmentSettings:
    invite_ttl_days: float = 7.0
    default_checkin_time: str = "09:00"
    default_quiet_start: str = "22:00"
    default_quiet_end: str = "08:00"
    timezone_buttons: tuple[str, ...] = (
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
        "America/Phoenix",
        "Pacific/Honolulu",
    )


@dataclass(frozen=True)
class SenderSettings:
    # Telegram allows about 30 messages/s overall and 1/s per chat; stay below both.
    messages_per_second: float = 25.0
    burst: int = 5
    per_chat_interval_seconds: float = 1.05
    max_attempts: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0


@dataclass(frozen=True)
class EscalationSettings:
    # Minutes the assigned clinician has to acknowledge before the next person is paged.
    urgent_ack_minutes: float = 30.0
    imminent_ack_minutes: float = 5.0
    # After backup and lead were paged, start again from the clinician, at most this many rounds.
    max_rounds: int = 3
    # An acknowledged alert without an outcome after this long reminds the person who acknowledged
    # it; as long again, the leads; then both, daily, until an outcome is recorded.
    resolve_reminder_minutes: float = 60.0
    # While an alert is unresolved, the participant's further messages are told to the clinician in
    # at most one notice per this many minutes (with the count); a higher level pages at once.
    follow_up_notice_minutes: float = 10.0


@dataclass(frozen=True)
class PrivacySettings:
    # Quote the participant's flagged words in the clinician's alert (a disclosure; off by default).
    quote_in_alerts: bool = False


@dataclass(frozen=True)
class LlmSettings:
    enabled: bool = False
    base_url: str = "https://api.openai.com/v1"
    mode: str = "moderation"  # moderation | chat
    model: str = "omni-moderation-latest"
    timeout_seconds: float = 3.0


@dataclass(frozen=True)
class SemanticSettings:
    # The local semantic layer (bot/safety/semantic.py): a sentence model reads each participant
    # message's meaning for risks the phrase rules have no words for. No network; on by default.
    enabled: bool = True
    # How long a message waits for it before the rules' level is acted on (its later answer still
    # raises the level and pages). A message the rules already page for never waits.
    wait_ms: float = 500.0


@dataclass(frozen=True)
class ScheduleSettings:
    tick_seconds: float = 5.0
    lease_seconds: float = 120.0
    grace_minutes: float = 60.0
    batch_size: int = 200
    # A participant's check-in that falls in their quiet hours: "defer" to the end of quiet
    # hours, or "skip" that day. Staff alerts never wait for quiet hours.
    quiet_hours_policy: str = "defer"
    # Each participant's messages come 0..jitter_minutes after the chosen time (always the same
    # offset for one participant), so a 9:00 wave is spread out.
    jitter_minutes: float = 5.0
    # Check-in rows are created this many days ahead, and the plan is refreshed this often.
    plan_days: int = 2
    plan_interval_minutes: float = 10.0


@dataclass(frozen=True)
class CheckinSettings:
    # The questions: content/<locale>/checkins/<questionnaire>.toml
    questionnaire: str = "daily"
    # A check-in left unfinished this long after it was sent expires and counts as missed.
    expire_hours: float = 12.0
    # One gentle reminder this many hours after an unanswered check-in was sent (0 = none).
    nudge_after_hours: float = 3.0
    # Tell the assigned clinician after this many missed check-ins in a row (0 = never);
    # again after each further run of the same length.
    notify_after_misses: int = 3


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class InstrumentSettings:
    # Weekly questionnaires (content/<locale>/instruments/<name>.toml), one after the other, on
    # `day` in the participant's time zone, `minutes_after_checkin` after their check-in time
    # (quiet hours as for check-ins). PHQ-9 and GAD-7 ask about the last two weeks: at most weekly.
    enabled: bool = True
    ask: tuple[str, ...] = ("phq9", "gad7")
    day: str = "monday"
    every_weeks: int = 1
    minutes_after_checkin: int = 30
    # An unfinished questionnaire closes this long after it was sent (its answers so far are kept).
    expire_hours: float = 24.0


@dataclass(frozen=True)
class GoalSettings:
    # The weekly goal progress prompt (0-10 per open goal and an optional line), on `day` in the
    # participant's time zone, `minutes_after_checkin` after their check-in time (quiet hours as
    # for check-ins); only for participants with an open goal. /goals works either way.
    enabled: bool = True
    day: str = "friday"
    minutes_after_checkin: int = 45


@dataclass(frozen=True)
class MedicationSettings:
    # Medication reminders the participant sets up in /meds (their own times, in their zone).
    enabled: bool = True
    # A reminder left without Taken / Snooze / Skip this long after it came counts as missed.
    missed_after_minutes: int = 120
    # "Snooze" brings the reminder back this many minutes later.
    snooze_minutes: int = 15
    # After this many missed in a row of one reminder, the assigned clinician is told, only if the
    # participant agreed to it in /meds (0 = never, and the question is not asked).
    notify_after_missed: int = 3


@dataclass(frozen=True)
class ReminderSettings:
    # Minutes before a program session that a participant is reminded (24 h and 15 min by default).
    offsets_minutes: tuple[int, ...] = (1440, 15)
    # Reminders this close to the start ignore quiet hours: the session is about to begin. A longer
    # one that would fall in quiet hours is sent just before they start instead.
    quiet_hours_exempt_minutes: int = 60
    # How far ahead session occurrences and reminder rows are planned.
    plan_ahead_hours: int = 48


@dataclass(frozen=True)
class BriefSettings:
    # Before each session its facilitator gets a brief: one message per participant for an
    # individual or family session (the assigned clinician too), one per group for a group session.
    enabled: bool = True
    minutes_before: int = 60


@dataclass(frozen=True)
class AttendanceSettings:
    # After "Can't attend", wait this long for a reason before the facilitator and clinician are told.
    reason_wait_minutes: float = 10.0
    # This many "can't attend" in a row (for the sessions the participant is in) notify the clinician.
    notify_clinician_after: int = 3


@dataclass(frozen=True)
class OutreachSettings:
    # A reply to a coach's or clinician's /message is taken this long after the message was sent;
    # later, what the participant writes is an ordinary message (kept for the care team).
    reply_window_hours: float = 72.0
    # A number participants can call to join a session by phone, shown in /techhelp ("" = none).
    techhelp_phone: str = ""


@dataclass(frozen=True)
class ContentSettings:
    directory: str = "content"
    allow_drafts: bool = False
    reading_grade_limit: float = 8.0
    # One psychoeducation snippet every this many days (0 = none), by program week, this many
    # minutes after the participant's check-in time (quiet hours as for check-ins).
    drip_every_days: int = 1
    drip_minutes_after_checkin: int = 60
    # The program's tracks (e.g. ["mental_health", "substance_use"]): a participant has one, and the
    # daily read sends the snippets of their track. Empty: no tracks, every snippet goes to everyone.
    tracks: tuple[str, ...] = ()


@dataclass(frozen=True)
class CoverageSettings:
    # While some participant's paging chain reaches nobody, every lead and admin is told once a
    # day at this time (the program's default time zone); `iopbot doctor` lists the gaps any time.
    notice_time: str = "08:00"
    # `iopbot doctor` warns about unused invites that expire within this many days (0 = only expired).
    invite_warning_days: float = 2.0


@dataclass(frozen=True)
class DischargeSettings:
    # `iopbot participant discharge --alumni`: a short check-in every this many days...
    alumni_every_days: int = 7
    # ...at this local time ("" = the participant's usual check-in time).
    alumni_checkin_time: str = ""


@dataclass(frozen=True)
class HealthSettings:
    # `iopbot healthz` and GET /healthz are unhealthy when no worker's scheduler has ticked for this
    # long (the tick runs every [schedule] tick_seconds; a stuck one stops every reminder and page).
    max_tick_age_seconds: float = 120.0
    # Serve GET /healthz alone on this port (0 = off), for polling and schedule-only workers; in
    # webhook mode it is on the webhook's port as well.
    listen_port: int = 0
    listen_host: str = "127.0.0.1"


GROUP_PROMPT_EVERY = ("off", "daily", "weekly")


@dataclass(frozen=True)
class GroupSettings:
    # Cohort group chats (README "Peer groups"). The confidentiality agreement's version: a new
    # version asks every member to accept it again before their next join.
    agreement_version: str = "2026-12-01"
    # The bot never deletes a group message on its own at concern or urgent level (a facilitator's
    # button hides it); at imminent level it may, when this is true.
    delete_imminent: bool = False
    # A discussion prompt from content/<locale>/group_prompts/: "off", "daily" or "weekly" (on
    # `prompt_day`), at `prompt_time` in the program's default time zone.
    prompt_every: str = "weekly"
    prompt_day: str = "monday"
    prompt_time: str = "18:00"
    # The bot posts nothing in the group between these times (the program's default time zone);
    # a prompt or notice due then waits until the end. Crisis replies go to private chats anyway.
    quiet_start: str = "21:00"
    quiet_end: str = "09:00"
    # Telegram allows about 20 messages a minute in one group; the bot keeps below this.
    messages_per_minute: int = 18
    # A join link is good for this many hours, and for one person.
    invite_hours: float = 24.0
    # /mute ALIAS without a number of hours mutes for this long.
    mute_hours: float = 24.0


SUPPORT_CHECKIN_DAYS = ("joined", *WEEKDAYS)


@dataclass(frozen=True)
class SupportSettings:
    # Support persons (README "Support persons"). Once a week a support person gets the line the
    # participant chose to share, then their own check-in: on `checkin_day` ("joined": the weekday
    # they joined; or "monday".."sunday"), at `checkin_time` in their time zone, from a week after.
    checkin_day: str = "joined"
    checkin_time: str = "18:00"
    # A week they rate this low or lower (0-10) tells the participant's clinician (a notice, no page).
    low_score: int = 2
    # How long a support person's invite link works (single use), in days.
    invite_days: float = 7.0
    # A participant may have at most this many support persons at a time.
    max_per_participant: int = 3


@dataclass(frozen=True)
class CrisisResources:
    """Fixed lines of the crisis reply for one locale. No generated text, ever."""

    emergency_number: str = "911"
    call_or_text: str = "988"
    chat_url: str = "https://988lifeline.org/chat"


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"


@dataclass(frozen=True)
class Secrets:
    bot_token: str = ""
    webhook_secret: str = ""
    data_key: str = ""
    llm_api_key: str = ""


@dataclass(frozen=True)
class Settings:
    program: ProgramSettings = field(default_factory=ProgramSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    enrollment: EnrollmentSettings = field(default_factory=EnrollmentSettings)
    sender: SenderSettings = field(default_factory=SenderSettings)
    escalation: EscalationSettings = field(default_factory=EscalationSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    semantic: SemanticSettings = field(default_factory=SemanticSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    checkin: CheckinSettings = field(default_factory=CheckinSettings)
    instruments: InstrumentSettings = field(default_factory=InstrumentSettings)
    goals: GoalSettings = field(default_factory=GoalSettings)
    medications: MedicationSettings = field(default_factory=MedicationSettings)
    triggers: TriggerThresholds = field(default_factory=TriggerThresholds)
    reminders: ReminderSettings = field(default_factory=ReminderSettings)
    attendance: AttendanceSettings = field(default_factory=AttendanceSettings)
    brief: BriefSettings = field(default_factory=BriefSettings)
    outreach: OutreachSettings = field(default_factory=OutreachSettings)
    content: ContentSettings = field(default_factory=ContentSettings)
    coverage: CoverageSettings = field(default_factory=CoverageSettings)
    discharge: DischargeSettings = field(default_factory=DischargeSettings)
    groups: GroupSettings = field(default_factory=GroupSettings)
    support: SupportSettings = field(default_factory=SupportSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    crisis: dict[str, CrisisResources] = field(
        default_factory=lambda: {"en": CrisisResources(), "es": CrisisResources()}
    )
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    secrets: Secrets = field(default_factory=Secrets)
    # Where config.toml was; relative paths (content directory, SQLite file) are taken from there.
    base_dir: Path = field(default_factory=Path.cwd)

    def crisis_for(self, locale: str) -> CrisisResources:
        return self.crisis.get(locale) or self.crisis.get("en") or CrisisResources()

    @property
    def content_dir(self) -> Path:
        return (self.base_dir / self.content.directory).resolve()

    def replace(self, **sections: Any) -> Settings:
        return dataclasses.replace(self, **sections)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check one TOML value against the dataclass annotation; say what is wrong otherwise."""
    hint = typing.get_origin(annotation) or annotation
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, not {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a text in quotes, not {value!r}")
        return value
    if hint is tuple:
        if typing.get_args(annotation)[:1] == (int,):
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ConfigError(f"{where} must be a list of whole numbers, like [1440, 15], not {value!r}")
            return tuple(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of texts, like [\"a\", \"b\"], not {value!r}")
        return tuple(value)
    raise ConfigError(f"{where}: unsupported setting type {annotation!r}")  # a bug in this file


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table ([section]), not {table!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; known keys are: {', '.join(sorted(known))}"
        )
    values = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in table.items()}
    return cls(**values)


SECTIONS: dict[str, type] = {
    "program": ProgramSettings,
    "telegram": TelegramSettings,
    "database": DatabaseSettings,
    "enrollment": EnrollmentSettings,
    "sender": SenderSettings,
    "escalation": EscalationSettings,
    "privacy": PrivacySettings,
    "llm": LlmSettings,
    "semantic": SemanticSettings,
    "schedule": ScheduleSettings,
    "checkin": CheckinSettings,
    "instruments": InstrumentSettings,
    "goals": GoalSettings,
    "medications": MedicationSettings,
    "triggers": TriggerThresholds,
    "reminders": ReminderSettings,
    "attendance": AttendanceSettings,
    "brief": BriefSettings,
    "outreach": OutreachSettings,
    "content": ContentSettings,
    "coverage": CoverageSettings,
    "discharge": DischargeSettings,
    "groups": GroupSettings,
    "support": SupportSettings,
    "health": HealthSettings,
    "logging": LoggingSettings,
}


def _check_timezone(name: str, where: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: {name!r} is not an IANA time zone (e.g. America/Chicago)") from None


@dataclass(frozen=True)
class Range:
    """What a numeric setting may be. NaN and infinity are never allowed."""

    low: float
    high: float
    above_low: bool = False  # `low` itself is not allowed ("greater than 0")
    zero_means: str = ""  # when 0 is allowed and special, what it means ("no nudge")

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return (value > self.low if self.above_low else value >= self.low) and value <= self.high

    def describe(self, whole: bool) -> str:
        def num(x: float) -> str:
            return str(int(x)) if whole or float(x).is_integer() else f"{x:g}"

        kind = "a whole number" if whole else "a number"
        zero = f" ({self.zero_means})" if self.zero_means else ""
        if self.above_low:
            return f"{kind} greater than {num(self.low)} and at most {num(self.high)}"
        return f"{kind} from {num(self.low)}{zero} to {num(self.high)}"


# Every number in the configuration and what it may be. A numeric setting missing here is a bug
# (tests/unit/test_config_schema.py walks the dataclasses). Zero and negatives are refused
# wherever they would mean "never", "broken" or "at once".
RANGES: dict[tuple[str, str], Range] = {
    ("telegram", "webhook_listen_port"): Range(1, 65535),
    ("telegram", "polling_timeout_seconds"): Range(1, 60),
    ("telegram", "request_timeout_seconds"): Range(0, 600, above_low=True),
    ("enrollment", "invite_ttl_days"): Range(0, 90, above_low=True),
    ("sender", "messages_per_second"): Range(0, 1000, above_low=True),
    ("sender", "burst"): Range(1, 1000),
    ("sender", "per_chat_interval_seconds"): Range(0, 60, above_low=True),
    ("sender", "max_attempts"): Range(1, 20),
    ("sender", "backoff_base_seconds"): Range(0, 60, above_low=True),
    ("sender", "backoff_max_seconds"): Range(0, 3600, above_low=True),
    ("escalation", "urgent_ack_minutes"): Range(0, 1440, above_low=True),
    ("escalation", "imminent_ack_minutes"): Range(0, 1440, above_low=True),
    ("escalation", "max_rounds"): Range(1, 20),
    ("escalation", "resolve_reminder_minutes"): Range(0, 10080, above_low=True),
    ("escalation", "follow_up_notice_minutes"): Range(0, 1440, above_low=True),
    ("llm", "timeout_seconds"): Range(0, 60, above_low=True),
    ("semantic", "wait_ms"): Range(0, 5_000),
    ("schedule", "tick_seconds"): Range(0, 300, above_low=True),
    ("schedule", "lease_seconds"): Range(0, 86400, above_low=True),
    ("schedule", "grace_minutes"): Range(0, 10080, above_low=True),
    ("schedule", "batch_size"): Range(1, 10000),
    ("schedule", "jitter_minutes"): Range(0, 60),
    ("schedule", "plan_days"): Range(1, 14),
    ("schedule", "plan_interval_minutes"): Range(0, 1440, above_low=True),
    ("checkin", "expire_hours"): Range(0, 24, above_low=True),
    ("checkin", "nudge_after_hours"): Range(0, 24, zero_means="no nudge"),
    ("checkin", "notify_after_misses"): Range(0, 30, zero_means="never"),
    ("instruments", "every_weeks"): Range(1, 8),  # never more often than weekly
    ("instruments", "minutes_after_checkin"): Range(0, 720),
    ("instruments", "expire_hours"): Range(0, 72, above_low=True),
    ("goals", "minutes_after_checkin"): Range(0, 720),
    ("medications", "missed_after_minutes"): Range(1, 1440),
    ("medications", "snooze_minutes"): Range(1, 240),
    ("medications", "notify_after_missed"): Range(0, 30, zero_means="never"),
    ("triggers", "low_mood"): Range(0, 10),
    ("triggers", "high_craving"): Range(1, 10),
    ("triggers", "low_mood_run_days"): Range(0, 14),  # 0 = off
    ("triggers", "low_mood_run_max"): Range(0, 10),
    ("reminders", "offsets_minutes"): Range(1, 20160),  # each element
    ("reminders", "quiet_hours_exempt_minutes"): Range(0, 1440),
    ("reminders", "plan_ahead_hours"): Range(1, 720),
    ("attendance", "reason_wait_minutes"): Range(0, 1440),
    ("attendance", "notify_clinician_after"): Range(1, 50),
    ("brief", "minutes_before"): Range(5, 1440),
    ("outreach", "reply_window_hours"): Range(0, 720, above_low=True),
    ("content", "reading_grade_limit"): Range(0, 20, above_low=True),
    ("content", "drip_every_days"): Range(0, 30, zero_means="no drip"),
    ("content", "drip_minutes_after_checkin"): Range(0, 720),
    ("coverage", "invite_warning_days"): Range(0, 90),
    ("discharge", "alumni_every_days"): Range(1, 60),
    ("groups", "messages_per_minute"): Range(1, 20),
    ("groups", "invite_hours"): Range(0, 168, above_low=True),
    ("groups", "mute_hours"): Range(0, 8760, above_low=True),
    ("support", "low_score"): Range(0, 9),
    ("support", "invite_days"): Range(0, 90, above_low=True),
    ("support", "max_per_participant"): Range(1, 10),
    ("health", "max_tick_age_seconds"): Range(0, 86400, above_low=True),
    ("health", "listen_port"): Range(0, 65535, zero_means="off"),
}


def _check_ranges(section: str, obj: Any, where: str) -> None:
    """Every numeric field of one section against RANGES (lists: each element)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        annotation = hints[f.name]
        numeric = annotation in (int, float) or typing.get_args(annotation)[:1] in ((int,), (float,))
        if not numeric:
            continue
        bounds = RANGES.get((section, f.name))
        if bounds is None:
            raise ConfigError(f"{where} [{section}] {f.name}: no allowed range is defined (a bug in bot/config.py)")
        value = getattr(obj, f.name)
        whole = annotation is int or typing.get_args(annotation)[:1] == (int,)
        if isinstance(value, tuple):
            if not value:
                raise ConfigError(f"{where} [{section}] {f.name} must not be empty; "
                                  f"each element must be {bounds.describe(whole)}")
            for element in value:
                if not bounds.allows(element):
                    raise ConfigError(f"{where} [{section}] {f.name}: each element must be "
                                      f"{bounds.describe(whole)}, not {_show(element)}")
        elif not bounds.allows(value):
            raise ConfigError(f"{where} [{section}] {f.name} must be {bounds.describe(whole)}, not {_show(value)}")


def _show(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value) if isinstance(value, str) else str(value)


def _check_url(value: str, where: str, *, schemes: tuple[str, ...] = ("http", "https"), empty_ok: bool = False) -> None:
    if not value and empty_ok:
        return
    parsed = urlsplit(value)
    if parsed.scheme not in schemes or not parsed.netloc or any(c.isspace() for c in value):
        allowed = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{where} must be a URL starting with {allowed} and a host, like "
                          f"\"{schemes[-1]}://example.org\", not {value!r}")


def _check_text(value: str, where: str, *, pattern: str | None = None, example: str = "") -> None:
    if not value.strip():
        raise ConfigError(f"{where} must not be empty{f'; for example {example}' if example else ''}")
    if pattern and not re.fullmatch(pattern, value):
        raise ConfigError(f"{where} must look like {example}, not {value!r}")


def _validate(s: Settings, where: str) -> None:
    for section in SECTIONS:
        _check_ranges(section, getattr(s, section), where)
    p = s.program
    if len(p.name) > 80:
        raise ConfigError(f"{where} [program] name must be at most 80 characters, not {len(p.name)}")
    if p.default_locale not in LOCALES:
        raise ConfigError(f"{where} [program] default_locale must be one of {', '.join(LOCALES)}, "
                          f"not {p.default_locale!r}")
    _check_timezone(p.default_timezone, f"{where} [program] default_timezone")
    _check_text(p.consent_version, f"{where} [program] consent_version", example='"2026-11-01"')
    _check_text(p.consent_scope, f"{where} [program] consent_scope",
                example='"check-in answers, messages to the bot, session attendance"')
    if p.after_hours_phone and not re.fullmatch(r"[0-9+() .\-]{3,30}", p.after_hours_phone):
        raise ConfigError(f"{where} [program] after_hours_phone must be a phone number like \"+1 555 010 0199\" "
                          f"(digits, spaces, + ( ) - .), not {p.after_hours_phone!r}")
    phone = s.outreach.techhelp_phone
    if phone and not re.fullmatch(r"[0-9+() .\-]{3,30}", phone):
        raise ConfigError(f"{where} [outreach] techhelp_phone must be a phone number like \"+1 555 010 0199\" "
                          f"(digits, spaces, + ( ) - .), not {phone!r}")
    t = s.telegram
    _check_url(t.api_base, f"{where} [telegram] api_base")
    if t.bot_username and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,31}", t.bot_username):
        raise ConfigError(f"{where} [telegram] bot_username must be a Telegram username without @ "
                          f"(letters, digits, _), not {t.bot_username!r}")
    if t.mode not in TELEGRAM_MODES:
        raise ConfigError(f"{where} [telegram] mode must be one of {', '.join(repr(m) for m in TELEGRAM_MODES)} "
                          f"(polling: polls when elected, one process per bot; webhook: serves the webhook; "
                          f"worker: the schedule only), not {t.mode!r}")
    if t.mode == "webhook" and not t.webhook_url:
        raise ConfigError(f"{where} [telegram] webhook_url is required when mode = \"webhook\"")
    # Telegram delivers webhooks only over HTTPS; plain http is allowed for this machine alone
    # (the local Bot API of the sandbox and the tests).
    loopback = urlsplit(t.webhook_url).hostname in ("127.0.0.1", "localhost", "::1")
    _check_url(t.webhook_url, f"{where} [telegram] webhook_url", schemes=("http", "https") if loopback else ("https",),
               empty_ok=True)
    _check_text(t.webhook_listen_host, f"{where} [telegram] webhook_listen_host", example='"127.0.0.1"')
    if not t.webhook_path.startswith("/") or any(c.isspace() for c in t.webhook_path):
        raise ConfigError(f"{where} [telegram] webhook_path must start with / and have no spaces, "
                          f"like \"/telegram/webhook\", not {t.webhook_path!r}")
    if not s.database.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(f"{where} [database] url must start with sqlite:// or postgresql:// "
                          f"(or DATABASE_URL), not {_redact_url(s.database.url)!r}")
    e = s.enrollment
    if not e.timezone_buttons:
        raise ConfigError(f"{where} [enrollment] timezone_buttons must list at least one time zone, "
                          "like [\"America/Chicago\"]")
    for tz in e.timezone_buttons:
        _check_timezone(tz, f"{where} [enrollment] timezone_buttons")
    for key in ("default_checkin_time", "default_quiet_start", "default_quiet_end"):
        value = getattr(e, key)
        if not _HHMM.match(value):
            raise ConfigError(f"{where} [enrollment] {key} must be a 24-hour time like \"09:00\", not {value!r}")
    if s.sender.backoff_max_seconds < s.sender.backoff_base_seconds:
        raise ConfigError(f"{where} [sender] backoff_max_seconds ({_show(s.sender.backoff_max_seconds)}) must not "
                          f"be less than backoff_base_seconds ({_show(s.sender.backoff_base_seconds)})")
    if s.escalation.imminent_ack_minutes > s.escalation.urgent_ack_minutes:
        raise ConfigError(
            f"{where} [escalation] imminent_ack_minutes must not be longer than urgent_ack_minutes"
        )
    if s.llm.mode not in ("moderation", "chat"):
        raise ConfigError(f"{where} [llm] mode must be \"moderation\" or \"chat\", not {s.llm.mode!r}")
    _check_url(s.llm.base_url, f"{where} [llm] base_url")
    if s.llm.enabled:
        _check_text(s.llm.model, f"{where} [llm] model", example='"omni-moderation-latest"')
    sc = s.schedule
    if sc.quiet_hours_policy not in ("defer", "skip"):
        raise ConfigError(f"{where} [schedule] quiet_hours_policy must be \"defer\" or \"skip\", "
                          f"not {sc.quiet_hours_policy!r}")
    if sc.lease_seconds <= sc.tick_seconds:
        raise ConfigError(f"{where} [schedule] lease_seconds ({_show(sc.lease_seconds)}) must be longer than "
                          f"tick_seconds ({_show(sc.tick_seconds)}), or rows would be claimed twice")
    c = s.checkin
    if c.nudge_after_hours and c.nudge_after_hours >= c.expire_hours:
        raise ConfigError(
            f"{where} [checkin] nudge_after_hours must be 0 (no nudge) or less than expire_hours ({c.expire_hours})"
        )
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", c.questionnaire):
        raise ConfigError(f"{where} [checkin] questionnaire must be a file name without .toml, like \"daily\"")
    _check_instruments(s.instruments, where)
    if s.goals.day not in WEEKDAYS:
        raise ConfigError(f"{where} [goals] day must be one of {', '.join(WEEKDAYS)}, not {s.goals.day!r}")
    offsets = s.reminders.offsets_minutes
    if len(set(offsets)) != len(offsets):
        raise ConfigError(f"{where} [reminders] offsets_minutes must be different whole minutes greater than 0, "
                          f"like [1440, 15], not {list(offsets)}")
    if s.reminders.plan_ahead_hours * 60 < max(offsets):
        raise ConfigError(f"{where} [reminders] plan_ahead_hours must cover the longest reminder offset "
                          f"({max(offsets)} minutes)")
    _check_text(s.content.directory, f"{where} [content] directory", example='"content"')
    for name in s.content.tracks:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name):
            raise ConfigError(f"{where} [content] tracks: each must be lowercase letters, digits, - and _ (at most "
                              f"40), like \"substance_use\", not {name!r}")
    if len(set(s.content.tracks)) != len(s.content.tracks):
        raise ConfigError(f"{where} [content] tracks names a track twice: {list(s.content.tracks)}")
    if not _HHMM.match(s.coverage.notice_time):
        raise ConfigError(f"{where} [coverage] notice_time must be a 24-hour time like \"08:00\", "
                          f"not {s.coverage.notice_time!r}")
    if s.discharge.alumni_checkin_time and not _HHMM.match(s.discharge.alumni_checkin_time):
        raise ConfigError(f"{where} [discharge] alumni_checkin_time must be a 24-hour time like \"10:00\" "
                          f"or \"\" (their usual check-in time), not {s.discharge.alumni_checkin_time!r}")
    for locale, crisis in s.crisis.items():
        for key in ("emergency_number", "call_or_text"):
            _check_text(getattr(crisis, key), f"{where} [crisis.{locale}] {key}", example='"988"')
        _check_url(crisis.chat_url, f"{where} [crisis.{locale}] chat_url")
    _check_groups(s.groups, where)
    _check_support(s.support, where)
    _check_health(s, where)
    if s.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{where} [logging] level must be DEBUG, INFO, WARNING or ERROR, not {s.logging.level!r}")


def _check_health(s: Settings, where: str) -> None:
    h = s.health
    if h.max_tick_age_seconds <= s.schedule.tick_seconds:
        raise ConfigError(f"{where} [health] max_tick_age_seconds ({_show(h.max_tick_age_seconds)}) must be longer "
                          f"than [schedule] tick_seconds ({_show(s.schedule.tick_seconds)}), or a healthy bot "
                          "would be reported stuck between two ticks")
    _check_text(h.listen_host, f"{where} [health] listen_host", example='"127.0.0.1"')
    if h.listen_port and h.listen_port == s.telegram.webhook_listen_port and s.telegram.mode == "webhook":
        raise ConfigError(f"{where} [health] listen_port ({h.listen_port}) is the webhook's port: in webhook mode "
                          "/healthz is served there already; set listen_port = 0 or another port")


def _check_groups(g: GroupSettings, where: str) -> None:
    if g.prompt_every not in GROUP_PROMPT_EVERY:
        raise ConfigError(f"{where} [groups] prompt_every must be one of {', '.join(GROUP_PROMPT_EVERY)}, "
                          f"not {g.prompt_every!r}")
    if g.prompt_day not in WEEKDAYS:
        raise ConfigError(f"{where} [groups] prompt_day must be one of {', '.join(WEEKDAYS)}, not {g.prompt_day!r}")
    for key in ("prompt_time", "quiet_start", "quiet_end"):
        if not _HHMM.match(getattr(g, key)):
            raise ConfigError(f"{where} [groups] {key} must be a 24-hour time like \"21:00\", "
                              f"not {getattr(g, key)!r}")
    _check_text(g.agreement_version, f"{where} [groups] agreement_version", pattern=r"[A-Za-z0-9._-]{1,40}",
                example='"2026-12-01"')


def _check_support(p: SupportSettings, where: str) -> None:
    if p.checkin_day not in SUPPORT_CHECKIN_DAYS:
        raise ConfigError(f"{where} [support] checkin_day must be \"joined\" (the weekday the support person "
                          f"joined) or one of {', '.join(WEEKDAYS)}, not {p.checkin_day!r}")
    if not _HHMM.match(p.checkin_time):
        raise ConfigError(f"{where} [support] checkin_time must be a 24-hour time like \"18:00\" (the support "
                          f"person's time zone), not {p.checkin_time!r}")


def _check_instruments(i: InstrumentSettings, where: str) -> None:
    if i.day not in WEEKDAYS:
        raise ConfigError(f"{where} [instruments] day must be one of {', '.join(WEEKDAYS)}, not {i.day!r}")
    for name in i.ask:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", name):
            raise ConfigError(f"{where} [instruments] ask: each must be a file name without .toml, like "
                              f"\"phq9\", not {name!r}")
    if len(set(i.ask)) != len(i.ask):
        raise ConfigError(f"{where} [instruments] ask names a questionnaire twice: {list(i.ask)}")
    if i.enabled and not i.ask:
        raise ConfigError(f"{where} [instruments] ask is empty: list the questionnaires, like [\"phq9\", "
                          "\"gad7\"], or set enabled = false")


def _redact_url(url: str) -> str:
    """A database URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def load_settings(path: Path | str = "config.toml", env: typing.Mapping[str, str] | None = None) -> Settings:
    """Read config.toml (if it exists) and the environment into Settings, or raise ConfigError."""
    env = os.environ if env is None else env
    path = Path(path)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}. Fix the line it names.") from None
    elif path.name != "config.toml":
        raise ConfigError(f"{path}: no such config file. Pass --config with an existing file.")
    where = str(path)
    unknown = sorted(set(raw) - set(SECTIONS) - {"crisis"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown section [{unknown[0]}]; known sections are: "
            f"{', '.join(sorted([*SECTIONS, 'crisis']))}"
        )
    sections = {name: _build(cls, raw.get(name, {}), f"{where} [{name}]") for name, cls in SECTIONS.items()}
    crisis = {"en": CrisisResources(), "es": CrisisResources()}
    for locale, table in raw.get("crisis", {}).items():
        crisis[locale] = _build(CrisisResources, table, f"{where} [crisis.{locale}]")
    db = sections["database"]
    if env.get("DATABASE_URL"):
        db = dataclasses.replace(db, url=normalize_database_url(env["DATABASE_URL"]))
    secrets = Secrets(
        bot_token=env.get("BOT_TOKEN", ""),
        webhook_secret=env.get("IOPBOT_WEBHOOK_SECRET", ""),
        data_key=env.get("IOPBOT_DATA_KEY", ""),
        llm_api_key=env.get("OPENAI_API_KEY", ""),
    )
    settings = Settings(
        **{**sections, "database": db},
        crisis=crisis,
        secrets=secrets,
        base_dir=path.resolve().parent,
    )
    _validate(settings, where)
    return settings


def normalize_database_url(url: str) -> str:
    """Accept the usual postgres:// and sqlite:// spellings and pick the async drivers."""
    for plain, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


def require_token(settings: Settings) -> str:
    if not settings.secrets.bot_token:
        raise ConfigError("BOT_TOKEN is not set. Put the token from @BotFather in the BOT_TOKEN environment variable.")
    return settings.secrets.bot_token




def require_program_name(settings: Settings) -> str:
    """The program's name, which participants see on the consent screen; `iopbot run` needs it."""
    if not settings.program.name.strip():
        raise ConfigError("[program] name is empty. Set it to your program's name in config.toml "
                          "(participants see it on the consent screen), e.g. name = \"Riverside IOP\".")
    return settings.program.name
