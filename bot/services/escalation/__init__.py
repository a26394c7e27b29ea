"""Alerts and paging: from a flagged message or answer to a clinician's outcome.

- kinds.py     what an alert writes down: the kinds of its scheduled rows, the codes in their
               payloads (why a page is sent, what a plan row plans), the event log (`record_event`)
- record.py    record a flagged message or answer; open, raise or extend the participant's escalation
- paging.py    the paging chain and its senders: who is paged in what order, skipping whoever cannot
               be reached, every lead and admin after the last round, reminders, "wrote again"
               notices, the participant's line ("your care team has been told", nobody reached)
- pages.py     what a page says and its buttons: the alert, the reminder, who took it and how it
               ended, the Acknowledge and outcome keyboards
- handling.py  what a clinician does with an alert: acknowledge, resolve with an outcome, add a
               note, reassign; who may, and which alerts are still without an outcome
- report.py    `iopbot report alerts`: median and p95 time to alert, acknowledgement and outcome;
               outcomes; coverage failures
- crisis.py    every crisis text a participant gets (the reply, "your care team has been told",
               nobody reached)
- coverage.py  whether every participant in care has someone reachable to page; `iopbot doctor`
               and the daily coverage notice to leads
- notices.py   notices to a clinician about a participant (blocked the bot, stopped, missed check-ins)
- setup.py     `install_escalation`: the page kinds, registered as urgent and never expiring
"""
