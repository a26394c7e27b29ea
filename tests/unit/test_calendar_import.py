"""Reading a session calendar from CSV and iCalendar: every bad line is named, with what to do."""

from datetime import UTC, datetime

from bot.services.calendar.csv_reader import parse_csv
from bot.services.calendar.ics_reader import parse_ics

HEADER = "title,kind,start,duration_minutes,timezone,video_link,facilitator,group,rrule\n"

ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Example//Calendar//EN\r
BEGIN:VTIMEZONE\r
TZID:America/Chicago\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:evening-group@program.example\r
SUMMARY:Evening process group\r
DTSTART;TZID=America/Chicago:20260302T150000\r
DTEND;TZID=America/Chicago:20260302T163000\r
RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20260601T000000Z\r
EXDATE;TZID=America/Chicago:20260309T150000\r
LOCATION:https://zoom.us/j/111\r
CATEGORIES:Therapy,Group\r
X-IOPBOT-GROUP:Mon-Wed evening\r
ORGANIZER;CN=dr-fac:mailto:fac@program.example\r
DESCRIPTION:Bring your workbook\\, and a pen. This line is folded\r
  onto a second line.\r
BEGIN:VALARM\r
TRIGGER:-PT15M\r
ACTION:DISPLAY\r
DESCRIPTION:Reminder\r
END:VALARM\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:evening-group@program.example\r
RECURRENCE-ID;TZID=America/Chicago:20260304T150000\r
DTSTART;TZID=America/Chicago:20260305T170000\r
DURATION:PT90M\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:family-1@program.example\r
SUMMARY:Family session\r
DTSTART:20260306T160000Z\r
DURATION:PT1H\r
URL:https://meet.example.org/fam-1\r
X-IOPBOT-KIND:family\r
X-IOPBOT-PARTICIPANTS:P-201\r
X-IOPBOT-FACILITATOR:dr-fac\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_csv_happy_path_reads_every_column() -> None:
    parsed = parse_csv(
        HEADER.replace("rrule", "rrule,participants")
        + "Evening group,group,2026-03-02T15:00,90,America/Chicago,https://zoom.us/j/123,dr-fac,Evening,"
          '"FREQ=WEEKLY;BYDAY=MO,WE",\n'
        + "Intake,individual,2026-03-04 10:30,60,America/Denver,https://zoom.us/j/9,dr-fac,,,P-201 P-202\n"
    )
    assert parsed.problems == []
    group, intake = parsed.specs
    assert (group.kind, group.group, group.rrule, group.duration_minutes) == ("group", "Evening",
                                                                              "FREQ=WEEKLY;BYDAY=MO,WE", 90)
    assert group.first_start == datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    assert intake.rrule is None and intake.start_local == datetime(2026, 3, 4, 10, 30)
    assert intake.participants == ("P-201", "P-202") and intake.group is None


def test_an_unquoted_byday_list_is_understood() -> None:
    parsed = parse_csv(HEADER + "G,group,2026-03-03T15:00,90,America/Chicago,https://z.us/j/1,dr-fac,G,"
                                "FREQ=WEEKLY;BYDAY=TU,TH\n")
    assert parsed.problems == [] and parsed.specs[0].rrule == "FREQ=WEEKLY;BYDAY=TU,TH"


def test_csv_every_bad_line_is_reported_with_its_number() -> None:
    parsed = parse_csv(
        HEADER
        + "Fine,group,2026-03-02T15:00,90,America/Chicago,https://zoom.us/j/1,dr-fac,A,\n"     # line 2
        + "Bad zone,group,2026-03-02T15:00,90,America/Chicgo,https://zoom.us/j/1,dr-fac,A,\n"  # line 3
        + "Bad link,group,2026-03-02T15:00,90,America/Chicago,zoom.us/j/1,dr-fac,A,\n"         # line 4
        + "Short row,group,2026-03-02T15:00,90,America/Chicago,https://zoom.us/j/1,dr-fac\n"   # line 5
        + "Bad rule,group,2026-03-02T15:00,90,America/Chicago,https://zoom.us/j/1,dr-fac,A,FREQ=MONTHLY\n"
    )
    by_line = {p.line: p.message for p in parsed.problems}
    assert sorted(by_line) == [3, 4, 5, 6]
    assert "unknown time zone 'America/Chicgo'" in by_line[3]
    assert "not a valid https:// URL" in by_line[4]
    assert "7 values but the header has 9 columns" in by_line[5]
    assert "FREQ=MONTHLY is not supported" in by_line[6]
    assert parsed.facilitators[0] == (2, "dr-fac")  # names are checked against the database later


def test_csv_missing_column_is_named_and_rows_are_still_checked() -> None:
    parsed = parse_csv("title,kind,start,duration_minutes,video_link,facilitator,group\n"
                       "A,group,2026-03-02T15:00,90,https://zoom.us/j/1,dr-fac,A\n"
                       "B,gruop,2026-03-02T15:00,90,https://zoom.us/j/1,dr-fac,A\n")
    messages = [(p.line, p.message) for p in parsed.problems]
    assert messages[0][0] == 1 and "missing column timezone" in messages[0][1]
    assert (3, "kind 'gruop' is not one of: group, individual, family") in messages
    assert parsed.specs == []


def test_ics_happy_path_with_exdate_override_and_utc_event() -> None:
    parsed = parse_ics(ICS)
    assert parsed.problems == []
    group, family = parsed.specs
    assert group.uid == "evening-group@program.example" and group.kind == "group"
    assert group.group == "Mon-Wed evening" and group.facilitator == "dr-fac"
    assert group.duration_minutes == 90 and group.video_link == "https://zoom.us/j/111"
    assert group.rrule == "FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20260601T000000Z"
    assert group.exdates == ["2026-03-09T15:00"]
    (moved,) = group.changes
    assert moved.original_start == datetime(2026, 3, 4, 21, tzinfo=UTC)
    assert moved.new_start == datetime(2026, 3, 5, 23, tzinfo=UTC) and moved.duration_minutes == 90
    assert family.kind == "family" and family.participants == ("P-201",) and family.timezone == "UTC"


def test_ics_broken_rrule_and_other_bad_lines_are_all_reported() -> None:
    broken = (ICS.replace("RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20260601T000000Z", "RRULE:FREQ=WEEKLY;BYDAY=MO,WX")
              .replace("URL:https://meet.example.org/fam-1", "URL:ftp://meet.example.org/fam-1"))
    parsed = parse_ics(broken)
    assert [(p.line, p.message) for p in parsed.problems] == [
        (12, "RRULE: BYDAY 'WX' is not a weekday; use MO, TU, WE, TH, FR, SA or SU"),
        (37, "video link 'ftp://meet.example.org/fam-1' is not a valid https:// URL"),
    ]
    assert parsed.specs == []


def test_ics_without_time_zone_or_end_says_what_to_add() -> None:
    text = ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nSUMMARY:Group\nDTSTART:20260302T150000\n"
            "URL:https://zoom.us/j/1\nX-IOPBOT-GROUP:A\nX-IOPBOT-FACILITATOR:dr-fac\nEND:VEVENT\nEND:VCALENDAR\n")
    messages = [(p.line, p.message) for p in parse_ics(text).problems]
    assert (5, "DTSTART has no time zone: add TZID=America/Chicago (or X-WR-TIMEZONE to the calendar)") in messages
    assert (2, "the event has neither DTEND nor DURATION") in messages
