"""Typed settings from config.toml plus the environment.

Every setting has a default here and is documented in config.toml. Secrets come only from the
environment (BOT_TOKEN, DATABASE_URL, IOPBOT_WEBHOOK_SECRET, IOPBOT_DATA_KEY, OPENAI_API_KEY).
A bad value stops the program at start with a message naming the key and what to do.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The thresholds' defaults live with the triggers they tune (one place for each decision).
from bot.safety.triggers import TriggerThresholds


class ConfigError(Exception):
    """A setting is missing or wrong. The message names the file, the key and the fix."""


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class ProgramSettings:
    name: str = "Our program"
    default_locale: str = "en"
    default_timezone: str = "America/New_York"
    # The program's own after-hours number, shown in every crisis reply.
    after_hours_phone: str = ""
    consent_version: str = "2026-11-01"
    # Data kept about a participant who consented: shown on the consent screen and stored (42 CFR Part 2).
    consent_scope: str = "check-in answers, messages to the bot, session attendance"


@dataclass(frozen=True)
class TelegramSettings:
    api_base: str = "https://api.telegram.org"
    # Used to print invite links; when empty, `iopbot invite` asks Telegram (getMe).
    bot_username: str = ""
    mode: str = "polling"  # polling | webhook
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
class AttendanceSettings:
    # After "Can't attend", wait this long for a reason before the facilitator and clinician are told.
    reason_wait_minutes: float = 10.0
    # This many "can't attend" in a row (for the sessions the participant is in) notify the clinician.
    notify_clinician_after: int = 3


@dataclass(frozen=True)
class ContentSettings:
    directory: str = "content"
    allow_drafts: bool = False
    reading_grade_limit: float = 8.0
    # One psychoeducation snippet every this many days (0 = none), by program week, this many
    # minutes after the participant's check-in time (quiet hours as for check-ins).
    drip_every_days: int = 1
    drip_minutes_after_checkin: int = 60


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
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    checkin: CheckinSettings = field(default_factory=CheckinSettings)
    triggers: TriggerThresholds = field(default_factory=TriggerThresholds)
    reminders: ReminderSettings = field(default_factory=ReminderSettings)
    attendance: AttendanceSettings = field(default_factory=AttendanceSettings)
    content: ContentSettings = field(default_factory=ContentSettings)
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
                raise ConfigError(f"{where} must be a list of whole numbers, like [1440, 15]")
            return tuple(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of texts, like [\"a\", \"b\"]")
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


_SECTIONS: dict[str, type] = {
    "program": ProgramSettings,
    "telegram": TelegramSettings,
    "database": DatabaseSettings,
    "enrollment": EnrollmentSettings,
    "sender": SenderSettings,
    "escalation": EscalationSettings,
    "privacy": PrivacySettings,
    "llm": LlmSettings,
    "schedule": ScheduleSettings,
    "checkin": CheckinSettings,
    "triggers": TriggerThresholds,
    "reminders": ReminderSettings,
    "attendance": AttendanceSettings,
    "content": ContentSettings,
    "logging": LoggingSettings,
}


def _check_timezone(name: str, where: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: {name!r} is not an IANA time zone (e.g. America/Chicago)") from None


def _validate(s: Settings, where: str) -> None:
    _check_timezone(s.program.default_timezone, f"{where} [program] default_timezone")
    for tz in s.enrollment.timezone_buttons:
        _check_timezone(tz, f"{where} [enrollment] timezone_buttons")
    for key in ("default_checkin_time", "default_quiet_start", "default_quiet_end"):
        value = getattr(s.enrollment, key)
        if not _HHMM.match(value):
            raise ConfigError(f"{where} [enrollment] {key} must be a 24-hour time like \"09:00\", not {value!r}")
    if s.telegram.mode not in ("polling", "webhook"):
        raise ConfigError(f"{where} [telegram] mode must be \"polling\" or \"webhook\", not {s.telegram.mode!r}")
    if s.telegram.mode == "webhook" and not s.telegram.webhook_url:
        raise ConfigError(f"{where} [telegram] webhook_url is required when mode = \"webhook\"")
    if s.llm.mode not in ("moderation", "chat"):
        raise ConfigError(f"{where} [llm] mode must be \"moderation\" or \"chat\", not {s.llm.mode!r}")
    positive = {
        "[sender] messages_per_second": s.sender.messages_per_second,
        "[sender] max_attempts": s.sender.max_attempts,
        "[schedule] tick_seconds": s.schedule.tick_seconds,
        "[escalation] urgent_ack_minutes": s.escalation.urgent_ack_minutes,
        "[escalation] imminent_ack_minutes": s.escalation.imminent_ack_minutes,
        "[enrollment] invite_ttl_days": s.enrollment.invite_ttl_days,
        "[llm] timeout_seconds": s.llm.timeout_seconds,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{where} {key} must be greater than 0, not {value}")
    if s.escalation.imminent_ack_minutes > s.escalation.urgent_ack_minutes:
        raise ConfigError(
            f"{where} [escalation] imminent_ack_minutes must not be longer than urgent_ack_minutes"
        )
    if s.schedule.quiet_hours_policy not in ("defer", "skip"):
        raise ConfigError(f"{where} [schedule] quiet_hours_policy must be \"defer\" or \"skip\", "
                          f"not {s.schedule.quiet_hours_policy!r}")
    if not 0 <= s.schedule.jitter_minutes <= 60:
        raise ConfigError(f"{where} [schedule] jitter_minutes must be between 0 and 60, "
                          f"not {s.schedule.jitter_minutes}")
    if not 1 <= s.schedule.plan_days <= 14:
        raise ConfigError(f"{where} [schedule] plan_days must be between 1 and 14, not {s.schedule.plan_days}")
    if s.schedule.plan_interval_minutes <= 0:
        raise ConfigError(f"{where} [schedule] plan_interval_minutes must be greater than 0")
    c = s.checkin
    if not 0 < c.expire_hours <= 24:
        raise ConfigError(f"{where} [checkin] expire_hours must be more than 0 and at most 24, not {c.expire_hours}")
    if c.nudge_after_hours < 0 or (c.nudge_after_hours and c.nudge_after_hours >= c.expire_hours):
        raise ConfigError(
            f"{where} [checkin] nudge_after_hours must be 0 (no nudge) or less than expire_hours ({c.expire_hours})"
        )
    if c.notify_after_misses < 0:
        raise ConfigError(f"{where} [checkin] notify_after_misses must be 0 (never) or more")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", c.questionnaire):
        raise ConfigError(f"{where} [checkin] questionnaire must be a file name without .toml, like \"daily\"")
    t = s.triggers
    for key, low, high in (("low_mood", 0, 10), ("high_craving", 1, 10), ("low_mood_run_days", 0, 14),
                           ("low_mood_run_max", 0, 10)):
        value = getattr(t, key)
        if not low <= value <= high:
            raise ConfigError(f"{where} [triggers] {key} must be a whole number from {low} to {high}, not {value}")
    offsets = s.reminders.offsets_minutes
    if any(o <= 0 for o in offsets) or len(set(offsets)) != len(offsets):
        raise ConfigError(f"{where} [reminders] offsets_minutes must be different whole minutes greater than 0, "
                          f"like [1440, 15], not {list(offsets)}")
    if s.reminders.plan_ahead_hours * 60 < max(offsets, default=0):
        raise ConfigError(f"{where} [reminders] plan_ahead_hours must cover the longest reminder offset "
                          f"({max(offsets)} minutes)")
    if s.attendance.notify_clinician_after < 1 or s.attendance.reason_wait_minutes < 0:
        raise ConfigError(f"{where} [attendance] notify_clinician_after must be 1 or more and "
                          "reason_wait_minutes 0 or more")
    if not 0 <= s.content.drip_every_days <= 30:
        raise ConfigError(f"{where} [content] drip_every_days must be 0 (no drip) to 30, "
                          f"not {s.content.drip_every_days}")
    if not 0 <= s.content.drip_minutes_after_checkin <= 720:
        raise ConfigError(f"{where} [content] drip_minutes_after_checkin must be 0 to 720 minutes, "
                          f"not {s.content.drip_minutes_after_checkin}")
    if s.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{where} [logging] level must be DEBUG, INFO, WARNING or ERROR")


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
    unknown = sorted(set(raw) - set(_SECTIONS) - {"crisis"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown section [{unknown[0]}]; known sections are: "
            f"{', '.join(sorted([*_SECTIONS, 'crisis']))}"
        )
    sections = {name: _build(cls, raw.get(name, {}), f"{where} [{name}]") for name, cls in _SECTIONS.items()}
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


