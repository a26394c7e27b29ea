"""Medication adherence for the pre-session brief and the caseload.

Counts the doses whose reminder time fell in a period, by outcome. `rate` is taken / due, where
due is every dose with an outcome (taken, skipped or missed); a reminder still open (pending) is
counted apart and not in the rate, so a dose sent a minute ago does not lower it. Names never
appear here: a clinician sees counts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.medication_models import DoseStatus, MedicationConsent, MedicationDose, MedicationReminder


@dataclass(frozen=True)
class Adherence:
    taken: int = 0
    skipped: int = 0
    missed: int = 0
    pending: int = 0
    # The participant has a reminder (not removed) or had a dose in the period: worth a line.
    has_reminders: bool = False

    @property
    def due(self) -> int:
        return self.taken + self.skipped + self.missed

    @property
    def rate(self) -> float | None:
        """Taken / due; None when nothing was due."""
        return self.taken / self.due if self.due else None


async def adherence(session: AsyncSession, participant_id: int, since: datetime, until: datetime) -> Adherence:
    """The outcomes of the doses due in [since, until) of one participant."""
    counts = dict((await session.execute(
        select(MedicationDose.status, func.count())
        .where(MedicationDose.participant_id == participant_id, MedicationDose.due_at >= since,
               MedicationDose.due_at < until)
        .group_by(MedicationDose.status))).all())
    has = bool(counts) or await session.scalar(select(MedicationReminder.id).where(
        MedicationReminder.participant_id == participant_id,
        MedicationReminder.removed_at.is_(None)).limit(1)) is not None
    return Adherence(taken=int(counts.get(DoseStatus.TAKEN, 0)), skipped=int(counts.get(DoseStatus.SKIPPED, 0)),
                     missed=int(counts.get(DoseStatus.MISSED, 0)), pending=int(counts.get(DoseStatus.PENDING, 0)),
                     has_reminders=has)


async def export_rows(session: AsyncSession, participant_id: int) -> dict[str, Any]:
    """A participant's own reminders and doses for /mydata: their names are theirs to see."""
    reminders = (await session.scalars(select(MedicationReminder).where(
        MedicationReminder.participant_id == participant_id).order_by(MedicationReminder.id))).all()
    doses = (await session.scalars(select(MedicationDose).where(
        MedicationDose.participant_id == participant_id).order_by(MedicationDose.due_at, MedicationDose.id))).all()
    return {
        "reminders": [{"id": r.id, "name": r.name, "times": r.times.split(","), "days": r.days or "every day",
                       "paused": r.paused_at is not None, "removed": r.removed_at is not None,
                       "created_at": r.created_at.isoformat()} for r in reminders],
        "doses": [{"reminder": d.reminder_id, "date": d.local_date.isoformat(), "time": d.local_time,
                   "status": d.status, "answered_at": d.answered_at.isoformat() if d.answered_at else None}
                  for d in doses],
    }


def adherence_line(ctx: AppContext, adherence: Adherence, locale: str) -> str | None:
    """"Medication reminders: 12 of 14 taken (2 missed)"; None when the participant has no reminders."""
    if not adherence.has_reminders:
        return None
    if not adherence.due:
        return ctx.t("meds.remind.summary_none_due", locale)
    line = ctx.t("meds.remind.summary_line", locale, taken=adherence.taken, due=adherence.due)
    extra = [ctx.t(f"meds.remind.summary_{name}", locale, **{name: value})
             for name, value in (("missed", adherence.missed), ("skipped", adherence.skipped),
                                 ("pending", adherence.pending)) if value]
    return f"{line} ({', '.join(extra)})" if extra else line


async def adherence_shared(session: AsyncSession, participant_id: int) -> bool:
    """Whether the participant agreed (and has not withdrawn it) that their care team sees their
    reminders: how many were taken, and a notice after missed ones in a row. Without it, staff see
    nothing of their reminders, not even the counts."""
    consent = await session.scalar(select(MedicationConsent).where(MedicationConsent.participant_id == participant_id))
    return consent is not None and consent.agreed and consent.revoked_at is None
