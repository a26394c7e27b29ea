"""The session calendar, one module per job:

- recurrence.py   weekly RRULEs expanded on the host's wall clock, across daylight saving time
- occurrences.py  occurrences, who a session is for, groups, planning reminder rows, cancel and move
- attendance.py   "I can't attend", the reason, and telling the facilitator and the clinician

Import a name from the module that owns it; this file holds nothing else.
"""
