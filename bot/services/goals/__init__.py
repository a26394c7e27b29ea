"""A participant's goals (up to three), kept alone or with their clinician, and the weekly progress prompt."""
