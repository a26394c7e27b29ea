"""Medication reminders the participant sets up themselves: Taken, Snooze, Skip.

Missed doses are told to the clinician only with consent. No medical advice, ever.
"""
