"""Cohort group chats (#17): a Telegram supergroup linked to a cohort, kept safe by the bot.

- chats.py       which groups are linked (and a memory of it for the safety gate), who leads a cohort
- membership.py  the agreement, join requests, per-person links, removal on discharge or /stop,
                 /mute, /remove, /readmit, and the periodic check that only the cohort is inside
- posting.py     everything the bot writes IN a group: one outbox kind, paced below Telegram's
                 ~20 messages a minute per group (counted in the database, so every worker shares
                 it), held during the group's quiet hours; the discussion prompts and their planner
- watch.py       a flagged group message: the facilitators' notice, the button that hides it,
                 the optional hiding at imminent level, and peers' worry that is not about themselves
- actions.py     Telegram's group operations (approve, decline, kick, mute, delete, invite links)
                 as outbox rows, carried out through the `GroupAdmin` port (port.py) that the edge
                 implements (bot/telegram/group_admin.py)
- setup.py       `install_groups`: the row kinds, the planner and the periodic check

Nothing the bot posts in a group names a person. The crisis reply to a group message goes to the
writer's private chat (bot/telegram/safety_gate.py), and their clinician is paged as for a private
message (bot/services/escalation/record.py).
"""
