"""A participant's goals (up to three), kept alone or with their clinician, and the weekly progress prompt.

- service.py   adding, changing, marking done (who did it, ids only); the export for /mydata
- progress.py  the weekly prompt as a flow kind: per open goal 0-10 (buttons) and an optional line
- planner.py   one prompt row per participant with an open goal and week, in their time zone
- summary.py   `goal_progress` and `goal_lines`: the trajectory for /goal, the brief, the caseload
- views.py     what /goals and /goal ALIAS show (words and buttons as plain data)
- setup.py     `install_goals`: the flow kind, the planner, the sender
"""
