"""Charts for clinicians and participants: the trend PNG (matplotlib, headless).

`trend_chart(ctx, session, participant, now, locale)` → (PNG bytes, caption): the data in
data.py, the drawing in render.py, the words and the off-the-loop call in service.py.
"""

from bot.services.charts.service import chart_filename, disclose_chart, trend_chart

__all__ = ["chart_filename", "disclose_chart", "trend_chart"]
