"""A recovery coach's /caseload puts goals and medication reminders (when the participant agreed to
share them) first; a therapist's does not."""

from __future__ import annotations

from datetime import timedelta

from bot.db.goal_models import Goal, GoalRating
from bot.db.medication_models import MedicationConsent, MedicationDose, MedicationReminder
from tests.support.inproc import InProcessBot, add_participant, add_staff

COACH, THERAPIST, ANA, BEN = 920_001, 920_002, 7_101, 7_102


async def test_a_coach_sees_goals_and_medication_first(inbot: InProcessBot) -> None:
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        coach = await add_staff(s, "coach-kim", COACH, now)
        coach.role = "coach"
        therapist = await add_staff(s, "dr-lee", THERAPIST, now)
        ana = await add_participant(s, "P-ana", coach, ANA, now)
        ben = await add_participant(s, "P-ben", coach, BEN, now)
        await add_participant(s, "P-cy", therapist, 7_103, now)
        goal = Goal(participant_id=ana.id, text="Walk every morning", status="open", created_by="participant",
                    created_at=now - timedelta(days=20))
        s.add(goal)
        await s.flush()
        for weeks_ago, value in ((2, 3), (1, 5), (0, 6)):
            s.add(GoalRating(goal_id=goal.id, participant_id=ana.id, value=value,
                             rated_at=now - timedelta(days=7 * weeks_ago, hours=2)))
        reminder = MedicationReminder(participant_id=ana.id, times="08:00", days="", created_at=now - timedelta(days=9))
        s.add(reminder)
        await s.flush()
        for days_ago, status in ((6, "taken"), (5, "taken"), (4, "missed"), (3, "taken"), (2, "skipped"), (1, "taken")):
            due = now - timedelta(days=days_ago)
            s.add(MedicationDose(reminder_id=reminder.id, participant_id=ana.id, local_date=due.date(),
                                 local_time="08:00", due_at=due, sent_at=due, status=status,
                                 deadline_at=due + timedelta(hours=2), answered_at=due))
        s.add(MedicationConsent(participant_id=ana.id, agreed=True, after_missed=3, decided_at=now - timedelta(days=9)))
        # Ben has a reminder too, but said no to his care team seeing them: nothing of it is shown.
        bens = MedicationReminder(participant_id=ben.id, times="09:00", days="", created_at=now - timedelta(days=9))
        s.add(bens)
        await s.flush()
        due = now - timedelta(days=1)
        s.add(MedicationDose(reminder_id=bens.id, participant_id=ben.id, local_date=due.date(), local_time="09:00",
                             due_at=due, sent_at=due, status="missed", deadline_at=due + timedelta(hours=2)))
        s.add(MedicationConsent(participant_id=ben.id, agreed=False, after_missed=3,
                                decided_at=now - timedelta(days=9)))
        await s.commit()

    await inbot.say(COACH, "/caseload")
    text = "\n".join(inbot.texts(COACH))
    ana_entry = text[text.index("P-ana"):].split("\n\n")[0].splitlines()
    # Right under the name: the goal's weekly ratings, then last week's medication reminders.
    assert "Walk every morning" in ana_entry[1] and "3 → 5 → 6" in ana_entry[1]
    assert ana_entry[2] == "Medication reminders: 4 of 6 taken (1 missed, 1 skipped)"
    ben_entry = text[text.index("P-ben"):].split("\n\n")[0].splitlines()
    assert ben_entry[1] == "No goals yet: /goal P-ben adds one with them."
    assert not any("Medication" in line for line in ben_entry)  # he did not agree to share them

    await inbot.say(THERAPIST, "/caseload")
    therapist_view = "\n".join(inbot.texts(THERAPIST))
    assert "P-cy" in therapist_view
    assert "No goals yet" not in therapist_view and "Medication reminders" not in therapist_view
