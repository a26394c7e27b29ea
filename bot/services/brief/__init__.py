"""The pre-session brief and the scheduled daily digest."""
