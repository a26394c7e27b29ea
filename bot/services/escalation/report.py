"""`iopbot report alerts`: the figures of the alert loop (seconds from the flagged message to the
first alert, to the acknowledgement and to the outcome, median and p95), how alerts ended, and
every coverage failure."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AlertOutcome, Escalation, EscalationStatus


@dataclass(frozen=True)
class ResponseTimes:
    count: int
    acknowledged: int
    to_alert_median: float | None
    to_alert_p95: float | None
    to_ack_median: float | None
    to_ack_p95: float | None
    resolved: int = 0
    to_resolution_median: float | None = None
    to_resolution_p95: float | None = None
    open: int = 0  # nobody acknowledged yet
    awaiting_outcome: int = 0  # acknowledged, no outcome yet
    outcomes: dict[str, int] = field(default_factory=dict)
    coverage_failures: tuple[tuple[int, str, datetime], ...] = ()  # (escalation id, alias, when)


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]


async def response_times(session: AsyncSession, since: datetime | None = None) -> ResponseTimes:
    """Seconds from the flagged message to the first alert, to the acknowledgement and to the
    outcome; how the alerts ended; and every coverage failure (nobody in the chain reached)."""
    query = select(Escalation)
    if since is not None:
        query = query.where(Escalation.message_received_at >= since)
    rows = (await session.scalars(query)).unique().all()
    to_alert = [(r.first_alert_sent_at - r.message_received_at).total_seconds() for r in rows if r.first_alert_sent_at]
    to_ack = [(r.acknowledged_at - r.message_received_at).total_seconds() for r in rows if r.acknowledged_at]
    to_resolution = [(r.resolved_at - r.message_received_at).total_seconds() for r in rows
                     if r.resolved_at and r.outcome not in (AlertOutcome.NOT_RECORDED, AlertOutcome.CONTACTED)]
    return ResponseTimes(
        count=len(rows), acknowledged=len(to_ack),
        to_alert_median=statistics.median(to_alert) if to_alert else None, to_alert_p95=_p95(to_alert),
        to_ack_median=statistics.median(to_ack) if to_ack else None, to_ack_p95=_p95(to_ack),
        resolved=sum(1 for r in rows if r.status == EscalationStatus.RESOLVED),
        to_resolution_median=statistics.median(to_resolution) if to_resolution else None,
        to_resolution_p95=_p95(to_resolution),
        open=sum(1 for r in rows if r.status == EscalationStatus.OPEN),
        awaiting_outcome=sum(1 for r in rows if r.status == EscalationStatus.ACKNOWLEDGED),
        outcomes=dict(Counter(r.outcome for r in rows if r.outcome).most_common()),
        coverage_failures=tuple((r.id, r.participant.alias, r.nobody_reached_at)
                                for r in sorted(rows, key=lambda r: r.id) if r.nobody_reached_at),
    )


def format_report(times: ResponseTimes, period: str) -> str:
    """`iopbot report alerts`: the figures above as lines for an operator."""

    def fmt(seconds: float | None) -> str:
        if seconds is None:
            return "-"
        if seconds < 120:
            return f"{seconds:.1f} s"
        return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"

    lines = [
        f"safety alerts ({period}): {times.count} escalations, {times.acknowledged} acknowledged, "
        f"{times.resolved} resolved; now unacknowledged: {times.open}, acknowledged without an outcome: "
        f"{times.awaiting_outcome}",
        f"  flagged message -> first clinician alert:  median {fmt(times.to_alert_median)}, "
        f"p95 {fmt(times.to_alert_p95)}",
        f"  flagged message -> acknowledgement:        median {fmt(times.to_ack_median)}, "
        f"p95 {fmt(times.to_ack_p95)}",
        f"  flagged message -> outcome recorded:       median {fmt(times.to_resolution_median)}, "
        f"p95 {fmt(times.to_resolution_p95)}",
        "  outcomes: " + (", ".join(f"{name} {n}" for name, n in times.outcomes.items()) or "none yet"),
        f"  coverage failures (nobody in the paging chain could be reached): {len(times.coverage_failures)}",
    ]
    lines += [f"    escalation {eid} ({alias}) at {at:%Y-%m-%d %H:%M} UTC"
              for eid, alias, at in times.coverage_failures]
    return "\n".join(lines)
