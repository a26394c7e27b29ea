"""What an alert writes down: the kinds of its scheduled rows, the codes in their payloads, and
its event log (`record_event`: one step of an alert, with its time)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import EscalationEvent

ALERT_KIND = "alert_step"  # one page (or reminder) to one staff member
PLAN_KIND = "alert_plan"  # pages every lead and admin, or reminds; then plans its next turn
FOLLOW_UP_KIND = "alert_follow_up"  # "wrote again", coalesced
CRISIS_LINE_KIND = "crisis_line"  # to the participant: care team told, or nobody reached

# Why a page is sent (payload "reason"); the chain's own pages have none.
CHAIN, RAISED, REASSIGNED, COVERAGE, FINAL, REMINDER = "", "raised", "reassigned", "coverage", "final", "reminder"
# The source of an escalation a support person's words opened (#17): "support:self" (their own
# distress) or "support:participant" (worry about the participant). Paged to the participant's care
# team like any other; the participant's own messages never attach to it, nor do its lines go to them.
SUPPORT_SOURCE = "support:"
# What a plan row plans.
UNACKNOWLEDGED, UNRESOLVED_STAGE = "unack", "unres"


def record_event(session: AsyncSession, escalation_id: int, at: datetime, kind: str, *,
                 staff_id: int | None = None, detail: str = "") -> None:
    """One step of an alert, with its time. Codes and ids only, never text."""
    session.add(EscalationEvent(escalation_id=escalation_id, at=at, kind=kind, staff_id=staff_id,
                                detail=detail[:200]))
