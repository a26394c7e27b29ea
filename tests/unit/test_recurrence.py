"""Weekly RRULE expansion on the host's wall clock, across daylight saving time."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.services.calendar.recurrence import RRuleError, check_first_start, occurrences_between, parse_rrule

CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_3pm_group_stays_at_3pm_local_across_spring_forward_and_fall_back() -> None:
    rule = parse_rrule("FREQ=WEEKLY;BYDAY=MO,TH")
    starts = occurrences_between(rule, datetime(2026, 3, 2, 15, 0), CHICAGO, utc(2026, 3, 1), utc(2026, 3, 13))
    # CST is UTC-6 until Sunday 8 March 2026, CDT (UTC-5) after: same wall time, one hour earlier in UTC.
    assert starts == [utc(2026, 3, 2, 21), utc(2026, 3, 5, 21), utc(2026, 3, 9, 20), utc(2026, 3, 12, 20)]
    autumn = occurrences_between(rule, datetime(2026, 3, 2, 15, 0), CHICAGO, utc(2026, 10, 29), utc(2026, 11, 6))
    assert autumn == [utc(2026, 10, 29, 20), utc(2026, 11, 2, 21), utc(2026, 11, 5, 21)]  # back to CST on 1 Nov
    assert all(s.astimezone(CHICAGO).hour == 15 for s in starts + autumn)


def test_a_time_in_the_spring_gap_moves_forward_and_an_ambiguous_one_happens_once() -> None:
    rule = parse_rrule("FREQ=WEEKLY;BYDAY=SU")
    gap = occurrences_between(rule, datetime(2026, 3, 1, 2, 30), NEW_YORK, utc(2026, 3, 7), utc(2026, 3, 9))
    assert [s.astimezone(NEW_YORK).strftime("%H:%M %Z") for s in gap] == ["03:30 EDT"]  # 2:30 does not exist
    twice = occurrences_between(rule, datetime(2026, 10, 25, 1, 30), NEW_YORK, utc(2026, 10, 31), utc(2026, 11, 3))
    assert [s.astimezone(NEW_YORK).strftime("%H:%M %Z") for s in twice] == ["01:30 EDT"]  # the first 1:30, once


def test_interval_count_until_and_exdates() -> None:
    first = datetime(2026, 3, 3, 18, 0)  # a Tuesday
    every_other = parse_rrule("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;COUNT=5")
    local = [s.astimezone(CHICAGO).date() for s in
             occurrences_between(every_other, first, CHICAGO, utc(2026, 1, 1), utc(2027, 1, 1))]
    assert local == [date(2026, 3, 3), date(2026, 3, 5), date(2026, 3, 17), date(2026, 3, 19), date(2026, 3, 31)]
    until = parse_rrule("RRULE:FREQ=WEEKLY;BYDAY=TU;UNTIL=20260317")
    skipped = frozenset({datetime(2026, 3, 10, 18, 0)})
    local = [s.astimezone(CHICAGO).date() for s in
             occurrences_between(until, first, CHICAGO, utc(2026, 1, 1), utc(2027, 1, 1), exdates=skipped)]
    assert local == [date(2026, 3, 3), date(2026, 3, 17)]
    one_off = occurrences_between(None, first, CHICAGO, utc(2026, 1, 1), utc(2027, 1, 1))
    assert one_off == [utc(2026, 3, 4, 0)]


@pytest.mark.parametrize(("text", "message"), [
    ("FREQ=DAILY", "FREQ=DAILY is not supported"),
    ("BYDAY=MO", "FREQ is missing"),
    ("FREQ=WEEKLY;BYDAY=MO,XX", "'XX' is not a weekday"),
    ("FREQ=WEEKLY;BYDAY=1MO", "numbered weekdays"),
    ("FREQ=WEEKLY;COUNT=3;UNTIL=20260601", "COUNT or UNTIL, not both"),
    ("FREQ=WEEKLY;UNTIL=June", "UNTIL='JUNE' is not a date"),
    ("FREQ=WEEKLY;INTERVAL=0", "INTERVAL='0' must be a whole number"),
    ("FREQ=WEEKLY;BYHOUR=9", "BYHOUR is not supported"),
    ("FREQ=WEEKLY;BYDAY", "is not NAME=VALUE"),
])
def test_broken_rules_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(RRuleError, match=message):
        parse_rrule(text)


def test_the_first_session_must_be_one_the_rule_gives() -> None:
    with pytest.raises(RRuleError, match="first session is on a MO but the rule says BYDAY=TU,TH"):
        check_first_start(parse_rrule("FREQ=WEEKLY;BYDAY=TU,TH"), datetime(2026, 3, 2, 15), CHICAGO)
    with pytest.raises(RRuleError, match="UNTIL is before the first session"):
        check_first_start(parse_rrule("FREQ=WEEKLY;UNTIL=20260101"), datetime(2026, 3, 2, 15), CHICAGO)
