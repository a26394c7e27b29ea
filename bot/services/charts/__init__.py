"""Charts for clinicians and participants: the trend PNG (matplotlib, headless)."""
