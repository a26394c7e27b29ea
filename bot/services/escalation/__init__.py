"""Alerts and paging: from a flagged message or answer to a clinician's outcome.

- alerts.py    record a flagged message, open or extend an escalation, the paging chain and its
               pages, acknowledge, reassign, resolve with an outcome, notes, response-time report
- crisis.py    every crisis text a participant gets (the reply, "your care team has been told",
               nobody reached)
- coverage.py  whether every participant in care has someone reachable to page; `iopbot doctor`
               and the daily coverage notice to leads
- notices.py   notices to a clinician about a participant (blocked the bot, stopped, missed check-ins)
- setup.py     `install_escalation`: the page kinds, registered as urgent and never expiring
"""
