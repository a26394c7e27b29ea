"""The session calendar, one module per job:

- recurrence.py   weekly RRULEs expanded on the host's wall clock, across daylight saving time
- occurrences.py  occurrences, who a session is for, groups, planning reminder rows, cancel and move
- attendance.py   "I can't attend", the reason, and telling the facilitator and the clinician
- reminders.py    sending reminder, session-update and attendance-notice rows; the planner and its wiring
- spec.py         what an import describes: the sessions a file lists, its problems (file:line)
- csv_reader.py   reading an import from CSV
- ics_reader.py   reading an import from iCalendar (.ics)
- reading.py      which reader a file needs
- apply.py        the database step of an import: check the names, write the sessions, all or nothing

Import a name from the module that owns it; this file holds nothing else.
"""
