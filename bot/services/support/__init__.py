"""Support persons (#17): family or friends a participant invites, with both consents.

- `service`: inviting (the participant's /support, or `iopbot invite support`), opening the link,
  the support person's own consent, what the participant shares (nothing by default; attendance
  and/or "checked in this week"; never answers, messages, scores or alerts), revoking and leaving.
- `sharing`: the weekly line the participant chose to share, worked out when it is sent.
- `checkins`: the support person's own weekly "how are you doing" (0-10 and an optional line).
- `safety`: what a support person writes, after the safety gate: stored apart from the
  participant's words, paged to the participant's care team (urgent, imminent) or told to the
  clinician as a concern.
- `reminders`: family-session reminders with the video link (the calendar's own texts and timing).
- `family`: the family psychoeducation in `content/<locale>/family/`.
- `senders`, `setup`: the scheduled rows and their wiring into the running bot.

Imports no aiogram; the Telegram side is bot/telegram/handlers/support.py.
"""
