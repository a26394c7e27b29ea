"""Coverage is checked, not assumed (CLINICAL.md 8): who would be paged for each participant, and
whether any of them can be reached.

- `check_coverage` is what `iopbot doctor` prints: every participant in care whose paging chain
  (assigned clinician, backup or the program's on-call staff, leads and admins) has nobody who
  can be reached (uncovered: exit 1), those for whom only the leads could be paged (no clinician,
  backup or on-call reachable), those whose own clinician cannot be reached, staff without a
  linked chat, unused invites that expire soon or have expired, and settings that weaken safety.
- `CoveragePlanner` runs from the scheduler tick: while any participant has no reachable
  clinician, backup or on-call (a crisis would reach only the leads, or nobody), every lead and
  admin who can be reached gets one `coverage_notice` row a day (key
  `coverage_notice:<local date>:<staff id>`, so any number of workers may plan at once), at
  `[coverage] notice_time` in the program's time zone, or as soon as a gap appears later that day.

Reachable means: an active staff member with a linked Telegram chat who has not blocked the bot
(marked when a page got 403, or their latest message from the bot was refused as blocked). This
module imports no aiogram (the CLI uses it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.models import (
    ActionStatus,
    Invite,
    Participant,
    ParticipantStatus,
    ScheduledAction,
    Staff,
    StaffRole,
)
from bot.services.audit import disclose
from bot.services.local_time import parse_hhmm, wall_time_to_utc
from bot.services.scheduling.rows import OneTransactionPlanner, enqueue

if TYPE_CHECKING:
    from bot.context import AppContext
    from bot.messaging import Messenger
    from bot.services.scheduling.outbox import Delivered, OutboxWorker

log = logging.getLogger(__name__)

COVERAGE_NOTICE = "coverage_notice"
BLOCKED_ERROR = "blocked by the user"  # what the outbox writes on a 403 (bot/services/scheduling/outbox.py)

# Participants someone must be able to reach: they can write to the bot (or will, once the link is
# opened), and what they write is assessed and may page. Declined, stopped and discharged are not.
# Alumni (discharged with a check-in every few days) still write, and are still paged for.
IN_CARE = (ParticipantStatus.INVITED, ParticipantStatus.CONSENT_PENDING, ParticipantStatus.ONBOARDING,
           ParticipantStatus.ACTIVE, ParticipantStatus.PAUSED, ParticipantStatus.ALUMNI)


def in_care_statuses() -> tuple[str, ...]:
    return tuple(str(s) for s in IN_CARE)


CLINICIAN, BACKUP, ON_CALL, LEAD = "clinician", "backup", "on-call", "lead"


@dataclass(frozen=True)
class StaffReach:
    id: int
    alias: str
    role: str
    reachable: bool
    why_not: str = ""  # "no linked Telegram chat", "deactivated", "blocked the bot"
    tier: str = ""  # where in the chain: clinician, backup, on-call, lead


@dataclass
class ParticipantCoverage:
    id: int
    alias: str
    status: str
    chain: list[StaffReach]

    @property
    def covered(self) -> bool:
        """Someone in the chain can be paged."""
        return any(s.reachable for s in self.chain)

    @property
    def clinically_covered(self) -> bool:
        """The assigned clinician, the backup or an on-call clinician can be paged (not only leads)."""
        return any(s.reachable for s in self.chain if s.tier != LEAD)

    @property
    def own_clinician(self) -> StaffReach | None:
        return self.chain[0] if self.chain else None


@dataclass(frozen=True)
class InviteState:
    alias: str
    who: str  # "staff" | "participant"
    expires_at: datetime
    expired: bool


@dataclass
class CoverageReport:
    participants: list[ParticipantCoverage] = field(default_factory=list)
    staff_without_chat: list[StaffReach] = field(default_factory=list)
    invites: list[InviteState] = field(default_factory=list)
    weak_settings: list[str] = field(default_factory=list)

    @property
    def uncovered(self) -> list[ParticipantCoverage]:
        return [p for p in self.participants if not p.covered]

    @property
    def leads_only(self) -> list[ParticipantCoverage]:
        """Only leads and admins could be paged: no clinician, backup or on-call can be reached."""
        return [p for p in self.participants if p.covered and not p.clinically_covered]

    @property
    def clinician_unreachable(self) -> list[ParticipantCoverage]:
        """The assigned clinician cannot be reached, but a backup or on-call clinician can."""
        return [p for p in self.participants
                if p.clinically_covered and p.own_clinician is not None and not p.own_clinician.reachable]

    @property
    def gaps(self) -> list[ParticipantCoverage]:
        """What the leads are told about daily: nobody, or only the leads, can be paged."""
        return [p for p in self.participants if not p.clinically_covered]


async def blocked_staff_ids(session: AsyncSession) -> set[int]:
    """Staff whose latest message from the bot (sent or finally failed) was refused as blocked."""
    latest = (select(ScheduledAction.staff_id, func.max(ScheduledAction.id).label("last_id"))
              .where(ScheduledAction.staff_id.is_not(None),
                     ScheduledAction.status.in_([ActionStatus.SENT, ActionStatus.FAILED]))
              .group_by(ScheduledAction.staff_id).subquery())
    rows = await session.execute(
        select(ScheduledAction.staff_id).join(latest, ScheduledAction.id == latest.c.last_id)
        .where(ScheduledAction.status == ActionStatus.FAILED, ScheduledAction.last_error == BLOCKED_ERROR))
    return {r[0] for r in rows if r[0] is not None}


def _reach(staff: Staff, blocked: set[int], tier: str = "") -> StaffReach:
    if not staff.active:
        why = "deactivated"
    elif staff.chat_id is None:
        why = "no linked Telegram chat (invite not opened yet)"
    elif staff.unreachable_at is not None or staff.id in blocked:
        why = "blocked the bot"
    else:
        why = ""
    return StaffReach(staff.id, staff.alias, staff.role, not why, why, tier)


def chain_of(participant: Participant, staff_by_id: dict[int, Staff], on_call: Sequence[Staff],
             leads: Sequence[Staff]) -> list[tuple[str, Staff]]:
    """Who is paged for this participant, in order (as bot/services/escalation/paging.py pages them):
    the assigned clinician, the backup or else the program's on-call staff, then leads and admins."""
    chain = [(CLINICIAN, staff_by_id[participant.therapist_id])]
    if participant.backup_id is not None:
        chain.append((BACKUP, staff_by_id[participant.backup_id]))
    else:
        chain.extend((ON_CALL, s) for s in on_call)
    chain.extend((LEAD, s) for s in leads)
    first: dict[int, tuple[str, Staff]] = {}
    for tier, staff in chain:
        first.setdefault(staff.id, (tier, staff))  # someone in two places is paged at the first
    return list(first.values())


async def participant_coverage(session: AsyncSession) -> list[ParticipantCoverage]:
    staff = (await session.scalars(select(Staff).order_by(Staff.id))).all()
    staff_by_id = {s.id: s for s in staff}
    blocked = await blocked_staff_ids(session)
    on_call = [s for s in staff if s.on_call and s.active]
    leads = sorted((s for s in staff if s.role in (StaffRole.LEAD, StaffRole.ADMIN) and s.active),
                   key=lambda s: (s.role != StaffRole.LEAD, s.id))
    people = (await session.scalars(select(Participant).where(Participant.status.in_(in_care_statuses()))
                                    .order_by(Participant.alias))).unique().all()
    return [ParticipantCoverage(p.id, p.alias, p.status,
                                [_reach(s, blocked, tier) for tier, s in chain_of(p, staff_by_id, on_call, leads)])
            for p in people]


def weak_settings(settings: Settings) -> list[str]:
    """Settings that are allowed but weaken safety or privacy, each with why."""
    s, found = settings, []
    if not s.program.name.strip():
        found.append("[program] name is empty: `iopbot run` will not start")
    if not s.program.after_hours_phone:
        found.append("[program] after_hours_phone is empty: crisis replies name no program line")
    if s.escalation.urgent_ack_minutes > 60:
        found.append(f"[escalation] urgent_ack_minutes = {s.escalation.urgent_ack_minutes:g}: the backup is "
                     "paged only after more than an hour")
    if s.escalation.imminent_ack_minutes > 15:
        found.append(f"[escalation] imminent_ack_minutes = {s.escalation.imminent_ack_minutes:g}: imminent risk "
                     "waits more than 15 minutes for the backup")
    if s.escalation.max_rounds < 2:
        found.append(f"[escalation] max_rounds = {s.escalation.max_rounds}: the chain is paged only once")
    if not s.semantic.enabled:
        found.append("[semantic] enabled = false: only the phrase rules read participants' messages; a plan, "
                     "means or farewell in words they do not list pages nobody")
    if s.checkin.notify_after_misses == 0:
        found.append("[checkin] notify_after_misses = 0: missed check-ins are never reported")
    if s.attendance.notify_clinician_after > 5:
        found.append(f"[attendance] notify_clinician_after = {s.attendance.notify_clinician_after}: a run of "
                     "absences is reported late")
    if s.triggers.low_mood_run_days == 0:
        found.append("[triggers] low_mood_run_days = 0: a run of low moods is never flagged")
    if s.triggers.high_craving >= 10 or s.triggers.low_mood == 0:
        found.append("[triggers] low_mood / high_craving are at the end of the scale: hardly any answer is flagged")
    if s.schedule.grace_minutes < 15:
        found.append(f"[schedule] grace_minutes = {s.schedule.grace_minutes:g}: after a short outage, due "
                     "check-ins and reminders are dropped as expired")
    if s.content.allow_drafts:
        found.append("[content] allow_drafts = true: content no clinician reviewed is sent to participants")
    if s.privacy.quote_in_alerts:
        found.append("[privacy] quote_in_alerts = true: alerts and absence notices quote participants' words in "
                     "Telegram (a disclosure)")
    if not s.secrets.data_key:
        found.append("IOPBOT_DATA_KEY is not set: messages and answers are stored in plain text")
    if s.telegram.mode == "webhook" and not s.secrets.webhook_secret:
        found.append("IOPBOT_WEBHOOK_SECRET is not set: `iopbot run` will not start in webhook mode")
    return found


async def check_coverage(session: AsyncSession, settings: Settings, now: datetime) -> CoverageReport:
    """Everything `iopbot doctor` reports."""
    report = CoverageReport(participants=await participant_coverage(session), weak_settings=weak_settings(settings))
    blocked = await blocked_staff_ids(session)
    report.staff_without_chat = [_reach(s, blocked) for s in (await session.scalars(
        select(Staff).where(Staff.active.is_(True), Staff.chat_id.is_(None)).order_by(Staff.alias))).all()]
    warn_until = now + timedelta(days=settings.coverage.invite_warning_days)
    rows = (await session.execute(
        select(Invite, Staff.alias, Participant.alias)
        .outerjoin(Staff, Staff.id == Invite.staff_id).outerjoin(Participant, Participant.id == Invite.participant_id)
        .where(Invite.used_at.is_(None), Invite.revoked_at.is_(None), Invite.expires_at <= warn_until)
        .order_by(Invite.expires_at))).all()
    for invite, staff_alias, participant_alias in rows:
        if participant_alias is not None:
            participant_status = await session.scalar(
                select(Participant.status).where(Participant.id == invite.participant_id))
            if participant_status not in (ParticipantStatus.INVITED, ParticipantStatus.DECLINED):
                continue  # enrolled with a later link
        elif staff_alias is not None:
            enrolled = await session.scalar(select(Staff.chat_id).where(Staff.id == invite.staff_id))
            if enrolled is not None:
                continue
        report.invites.append(InviteState(staff_alias or participant_alias or "?",
                                          "staff" if staff_alias else "participant", invite.expires_at,
                                          invite.expires_at <= now))
    return report


def format_report(report: CoverageReport, now: datetime, timezone: str) -> str:
    zone = ZoneInfo(timezone)

    def when(moment: datetime) -> str:
        return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} ({timezone})"

    def why(chain: list[StaffReach]) -> str:
        return "; ".join(f"{s.alias} ({s.tier}): {s.why_not}" for s in chain if not s.reachable) or "-"

    lines = [f"iopbot doctor: {len(report.participants)} participant(s) in care, {len(report.uncovered)} with "
             f"nobody reachable"]
    lines.append("")
    lines.append("Participants whose paging chain reaches nobody:")
    lines += [f"  UNCOVERED {p.alias} ({p.status}): {why(p.chain)}" for p in report.uncovered] or ["  none"]
    lines.append("Participants for whom only leads and admins can be paged (no clinician, backup or on-call):")
    lines += [f"  {p.alias} ({p.status}): {why(p.chain)}" for p in report.leads_only] or ["  none"]
    lines.append("Participants whose own clinician cannot be reached (pages go to the next person):")
    lines += [f"  {p.alias}: {p.own_clinician.alias} – {p.own_clinician.why_not}; first reachable: "
              f"{next(s.alias for s in p.chain if s.reachable)}"
              for p in report.clinician_unreachable if p.own_clinician] or ["  none"]
    lines.append("Staff without a linked Telegram chat:")
    lines += [f"  {s.alias} ({s.role})" for s in report.staff_without_chat] or ["  none"]
    lines.append("Unused invites that have expired or expire soon:")
    lines += [f"  {i.who} {i.alias}: {'expired' if i.expired else 'expires'} {when(i.expires_at)}"
              for i in report.invites] or ["  none"]
    lines.append("Settings that weaken safety or privacy:")
    lines += [f"  {w}" for w in report.weak_settings] or ["  none"]
    if report.uncovered:
        lines.append("")
        lines.append("Fix: have each listed clinician open their invite link (or `iopbot invite staff` again), "
                     "name a --backup, mark someone --on-call, or enroll a lead.")
    return "\n".join(lines)


def report_json(report: CoverageReport) -> dict[str, Any]:
    return {
        "participants_in_care": len(report.participants),
        "uncovered": [{"alias": p.alias, "status": p.status,
                       "chain": [{"alias": s.alias, "role": s.role, "why_not": s.why_not} for s in p.chain]}
                      for p in report.uncovered],
        "leads_only": [p.alias for p in report.leads_only],
        "clinician_unreachable": [p.alias for p in report.clinician_unreachable],
        "staff_without_chat": [s.alias for s in report.staff_without_chat],
        "invites": [{"alias": i.alias, "who": i.who, "expires_at": i.expires_at.isoformat(), "expired": i.expired}
                    for i in report.invites],
        "weak_settings": report.weak_settings,
    }


# --- the daily notice to leads ---------------------------------------------------------------------

class CoveragePlanner(OneTransactionPlanner):
    """From the scheduler tick: one notice a day to every reachable lead and admin while a gap lasts."""

    what = "coverage notices"

    async def plan_in(self, session: AsyncSession, now: datetime) -> int:
        return await plan_coverage_notices(session, self.ctx.settings, now)

    async def plan(self, now: datetime) -> int:
        added = await super().plan(now)
        if added:
            self.ctx.wake_outbox()  # a lead hears of the gap now, not at the outbox's next look
        return added


async def plan_coverage_notices(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Today's coverage notice rows, once `[coverage] notice_time` has passed and a gap exists."""
    zone = ZoneInfo(settings.program.default_timezone)
    today = now.astimezone(zone).date()
    if now < wall_time_to_utc(today, parse_hhmm(settings.coverage.notice_time), zone):
        return 0
    gaps = [p for p in await participant_coverage(session) if not p.clinically_covered]
    if not gaps:
        return 0
    blocked = await blocked_staff_ids(session)
    leads = [s for s in (await session.scalars(
        select(Staff).where(Staff.role.in_([StaffRole.LEAD, StaffRole.ADMIN]), Staff.active.is_(True))
        .order_by(Staff.id))).all() if _reach(s, blocked).reachable]
    if not leads:
        log.error("coverage: %d participant(s) have nobody reachable, and no lead or admin can be told; "
                  "run `iopbot doctor`", len(gaps))
        return 0
    added = 0
    for lead in leads:
        added += await enqueue(session, kind=COVERAGE_NOTICE, key=f"{COVERAGE_NOTICE}:{today.isoformat()}:{lead.id}",
                               due_at=now, staff_id=lead.id, payload={"participant_ids": [p.id for p in gaps]},
                               now=now)
    if added:
        log.warning("coverage: %d participant(s) have no reachable clinician, backup or on-call; %d lead(s) "
                    "told", len(gaps), added)
    return added


async def send_coverage_notice(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                               row: ScheduledAction) -> Delivered:
    """ActionSender for `coverage_notice` rows: the gaps as they are now, not as they were planned."""
    from bot.messaging import say
    from bot.services.scheduling.outbox import Delivered, Skip

    staff = await session.get(Staff, row.staff_id) if row.staff_id else None
    if staff is None or staff.chat_id is None or not staff.active:
        raise Skip("lead no longer reachable")
    gaps = [p for p in await participant_coverage(session) if not p.clinically_covered]
    if not gaps:
        raise Skip("coverage restored before the notice went out")
    aliases = ", ".join(p.alias for p in gaps)
    text = ctx.t("coverage.notice", staff.locale, count=len(gaps), aliases=aliases)
    message = await say(messenger, staff.chat_id, text)
    sent = ctx.clock.now()
    for p in gaps:
        disclose(session, sent, p.id, f"staff:{staff.id}", "notice", COVERAGE_NOTICE)
    return Delivered(staff.chat_id, message.message_id)


def install_coverage(ctx: AppContext, worker: OutboxWorker | None = None) -> CoveragePlanner:
    """Wire the daily coverage notice into a running bot (called once from bot.runtime.assemble)."""
    planner = ctx.parts.add(CoveragePlanner(ctx))
    if worker is not None:
        # A late notice about a gap in coverage is still worth sending, like any staff notice.
        worker.register(COVERAGE_NOTICE, send_coverage_notice, never_expire=True)
        worker.add_planner("coverage", planner.tick)
    return planner
