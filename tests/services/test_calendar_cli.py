"""`iopbot sessions …` as an operator uses it, on SQLite and PostgreSQL: a bad file imports nothing
and names every bad line; cancelling and moving one date; groups; mistakes get clear messages."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import main
from bot.clock import OffsetFileClock

REPO = Path(__file__).resolve().parents[2]
HEADER = "title,kind,start,duration_minutes,timezone,video_link,facilitator,group,rrule\n"


@pytest.fixture
def iopbot(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n\n[content]\ndirectory = "{REPO / "content"}"\n')
    clock_file = tmp_path / "clock"
    # The operator's "now" is Monday 2 March 2026, 14:00 UTC.
    OffsetFileClock.write_offset(clock_file, datetime(2026, 3, 2, 14, 0, tzinfo=UTC).timestamp() - time.time())
    monkeypatch.setenv("IOPBOT_CLOCK_FILE", str(clock_file))
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--config", str(config), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_operator_commands(iopbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert iopbot("invite", "staff", "--alias", "dr-fac", "--role", "therapist")[0] == 0
    assert iopbot("invite", "participant", "--alias", "P-1", "--therapist", "dr-fac")[0] == 0

    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER
                   + "Group,group,2026-03-02T14:00,90,America/Chicago,https://zoom.us/j/1,dr-fac,Mon,\n"
                   + "Group,group,2026-03-02T14:00,90,Mars/Olympus,https://zoom.us/j/1,dr-fac,Mon,\n"
                   + "Other,group,2026-03-02T14:00,90,America/Chicago,https://zoom.us/j/1,dr-who,Mon,\n")
    code, out, err = iopbot("sessions", "import", str(bad))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{bad}:3: unknown time zone 'Mars/Olympus'; use an IANA name like America/Chicago",
        f"{bad}:4: unknown facilitator 'dr-who': enroll them with `iopbot invite staff` first, or fix the alias",
        "2 problems found. Nothing was imported; fix them and run the import again.",
    ]
    assert iopbot("sessions", "list")[1].startswith("No sessions in the next 7 days")
    assert iopbot("sessions", "group", "list")[1].startswith("No groups yet")  # not even the group

    good = tmp_path / "good.csv"
    good.write_text(HEADER + 'Group,group,2026-03-02T14:00,90,America/Chicago,https://zoom.us/j/1,dr-fac,Mon-Wed,'
                             '"FREQ=WEEKLY;BYDAY=MO,WE"\n')
    code, out, _ = iopbot("sessions", "import", "--dry-run", str(good))
    assert code == 0 and out.startswith("Checked (dry run, nothing saved): 1 session from good.csv (1 new")
    assert iopbot("sessions", "group", "list")[1].startswith("No groups yet")
    code, out, _ = iopbot("sessions", "import", str(good))
    found = re.search(r"session (\d+): Group – Mon 2026-03-02 14:00 CST – FREQ=WEEKLY;BYDAY=MO,WE", out)
    assert code == 0 and found, out
    sid = found.group(1)
    assert "group 'Mon-Wed' has no members yet" in out
    assert "(0 new, 0 updated, 1 unchanged)" in iopbot("sessions", "import", str(good))[1]  # again: no change

    code, _, err = iopbot("sessions", "group", "add", "Mon-Wed", "P-1", "P-404")
    assert code == 2 and "unknown participant: P-404; nothing was changed" in err
    code, out, _ = iopbot("sessions", "group", "add", "Mon-Wed", "P-1")
    assert code == 0 and "members now: P-1" in out

    code, out, _ = iopbot("sessions", "cancel", sid, "--date", "2026-03-04")
    assert code == 0 and out.startswith(f"Cancelled session {sid} on Wed 2026-03-04 14:00 CST")
    code, out, _ = iopbot("sessions", "move", sid, "--date", "2026-03-09", "--to", "2026-03-10T16:00")
    assert code == 0 and "from Mon 2026-03-09 14:00 CDT to Tue 2026-03-10 16:00 CDT" in out
    code, out, _ = iopbot("sessions", "list", "--days", "9")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[1:4] for r in rows] == [["Mon", "2026-03-02", "14:00"], ["Wed", "2026-03-04", "14:00"],
                                      ["Tue", "2026-03-10", "16:00"]]
    assert "[CANCELLED]" in out.splitlines()[2] and "[moved from Mon 2026-03-09 14:00 CDT]" in out.splitlines()[3]

    assert iopbot("sessions", "cancel", "999")[2].startswith("error: no session 999")
    code, _, err = iopbot("sessions", "move", sid, "--date", "2026-03-03", "--to", "2026-03-03T10:00")
    assert code == 2 and f"session {sid} does not meet on 2026-03-03" in err
    code, _, err = iopbot("sessions", "cancel", sid, "--date", "2026-03-04")
    assert code == 2 and "already cancelled" in err
    code, out, _ = iopbot("sessions", "cancel", sid)
    assert code == 0 and out.startswith(f"Cancelled session {sid} (Group) from now on")
    code, out, _ = iopbot("sessions", "import", str(good))  # the same file again does not revive it
    assert code == 0 and "(0 new, 0 updated, 0 unchanged, 1 cancelled)" in out and "stays cancelled" in out
    listed = iopbot("sessions", "list")[1].splitlines()[1:]
    assert listed and all(line.endswith("[CANCELLED]") for line in listed)
