"""The daily check-in.

- service.py  the check-in as a flow kind: sending it and its nudge, answers, the end of a run,
              structured triggers, misses, the participant's export of their answers
- planner.py  every participant's coming check-ins as rows, in their time zone and quiet hours
- setup.py    `install_checkins`: the flow engine, the questions, the planner, the senders
"""
