"""Wiring of escalation and paging into a running bot.

`install_escalation(worker)` is called once by `bot.runtime.assemble`. Every kind of row the alert
loop writes (bot/services/escalation/paging.py) is urgent and never expires:

- urgent: a lane of its own, ahead of everything else in the rate limit, so a clinician's page
  does not wait behind a batch of 9:00 check-ins (a batch can take a minute to send);
- never expired: a late alert to a clinician is still better than none, and the participant's
  line about it ("your care team has been told") stays true when it comes late.
"""

from __future__ import annotations

from bot.services.escalation.kinds import ALERT_KIND, CRISIS_LINE_KIND, FOLLOW_UP_KIND, PLAN_KIND
from bot.services.escalation.paging import run_alert_plan, send_alert_step, send_crisis_line, send_follow_up_notice
from bot.services.scheduling.outbox import ActionSender, OutboxWorker

ESCALATION_SENDERS: dict[str, ActionSender] = {
    ALERT_KIND: send_alert_step,
    PLAN_KIND: run_alert_plan,
    FOLLOW_UP_KIND: send_follow_up_notice,
    CRISIS_LINE_KIND: send_crisis_line,
}


def install_escalation(worker: OutboxWorker) -> None:
    for kind, sender in ESCALATION_SENDERS.items():
        worker.register(kind, sender, urgent=True, never_expire=True)
