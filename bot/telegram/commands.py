"""Every command, by who may use it: one list, so refusals and the authorization matrix
(tests/chaos/test_authorization.py) cover each command a router adds.

A command here that no router handles for its role gets "I don't know that command"; one typed by
the other role is refused and audited by the fallback (bot/telegram/handlers/fallback.py).
"""

from __future__ import annotations

PARTICIPANT_COMMANDS = frozenset({
    "settings", "pause", "resume", "stop", "mydata", "checkin", "sessions", "learn", "skills", "favorites",
    "plan", "safetyplan",
    "techhelp",  # outreach.py: when the video link fails
    "goals",  # goals.py
    "meds",  # medications.py
    "mytrend",  # charts.py
    "support",  # support.py: invite family or friends, choose what they see, stop it
    "group",  # groups.py: the group chat's agreement and their own join link
})

STAFF_COMMANDS = frozenset({
    "caseload", "alerts", "digest", "trends", "settings",
    "message",  # outreach.py: a message to a participant
    "goal",  # goals.py: a participant's goals
    "trend",  # charts.py: the chart
    "track",  # tracks.py: the program track
    # groups.py: their links to the cohorts' group chats; /linkgroup's usage (it is sent in the group
    # itself); a facilitator's /mute, /unmute, /remove and /readmit of a participant there
    "group", "linkgroup", "mute", "unmute", "remove", "readmit",
})

# A participant's support person (support.py), besides /start and /help. Any other command is
# refused to them and audited; these are refused to everyone else (/stop is everyone's own).
SUPPORT_PERSON_COMMANDS = frozenset({
    "family",  # the family reads
    "stop",  # stop getting messages
})
