"""Medication reminders the participant sets up themselves: Taken, Snooze, Skip.

Missed doses are told to the clinician only with consent. No medical advice, ever.

- schedule.py  pure: the times and weekdays people type and tap, each dose's time in UTC (DST-correct),
               the length of a run of missed doses
- service.py   /meds as use cases (add, pause, resume, remove, consent), the reminder's sender, the
               answer to its buttons, and closing unanswered doses as missed (with the notice)
- planner.py   every active participant's coming doses as `med_reminder` rows, in their zone
- views.py     what /meds and a reminder say, and their buttons (words from ui/medications.toml)
- summary.py   adherence over a period, for the pre-session brief and the caseload
- setup.py     `install_medications`: the sender, the planner, the replanner
"""
