"""The sandbox page in real Chromium: a visitor enrolls, writes in distress, the therapist acknowledges
the alert, time moves and a check-in arrives, and all of it works with the keyboard alone.

One `iopbot sandbox` process serves the module; the tests run in file order and build on its
demo program (the seeded people, and the new user the first test enrolls). Screenshots of every
screen go to test-artifacts/browser/.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import Any

import pytest

from bot.sandbox.botapi import DEFAULT_TOKEN
from tests.browser.conftest import RunningSandbox, chromium_path
from tests.browser.screens import Screens

pytestmark = pytest.mark.browser


def bot_messages(page: Any, text: str) -> Any:
    return page.locator("li.msg.from-bot").filter(has_text=text)


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def send(page: Any, text: str) -> None:
    box = page.get_by_role("textbox", name="Message to the bot")
    box.fill(text)
    box.press("Enter")


NEWEST_IN_VIEW = """() => {
  const items = document.querySelectorAll('li.msg');
  if (!items.length) return false;
  const newest = items[items.length - 1].getBoundingClientRect();
  const composer = document.getElementById('composer').getBoundingClientRect();
  return newest.bottom <= composer.top + 1 && newest.bottom > 0;
}"""


def test_chromium_is_installed() -> None:
    """Fails (never skips) with how to install it when Debian's chromium is missing."""
    assert chromium_path()


def test_new_user_enrolls_writes_in_crisis_and_the_therapist_acknowledges(
    page: Any, sandbox: RunningSandbox
) -> None:
    check, screens = expect(), Screens("enroll-crisis-acknowledge")
    page.goto(f"{sandbox.url}/?as=new")
    check(page).to_have_title(re.compile("A new user with an invite link"))
    check(page.locator("#invite")).to_be_visible()
    check(page.locator("#invite-link")).to_contain_text("https://t.me/iopbot_test_bot?start=")
    check(page.locator("#empty-chat")).to_be_visible()
    screens(page, "invite-link")

    page.get_by_role("button", name="Open the invite link").click()
    consent = bot_messages(page, "not end-to-end encrypted")
    check(consent).to_be_visible()
    check(consent).to_contain_text("In an emergency, call 911.")
    check(consent.locator("b").first).to_be_visible()  # Telegram HTML is rendered, not shown as tags
    assert "<b>" not in consent.inner_text()
    # The visitor's own message shows the command, never the invite token behind it.
    check(page.locator("li.msg.from-you")).to_have_count(1)
    check(page.locator("li.msg.from-you")).to_contain_text("/start")
    assert "start=" not in page.locator("li.msg.from-you").inner_text()
    check(page.locator("#invite")).to_be_hidden()
    screens(page, "consent")

    consent.get_by_role("button", name="I agree").click()
    check(consent.get_by_role("button")).to_have_count(0)  # the consent buttons are gone once answered
    check(bot_messages(page, "Which time zone")).to_be_visible()
    page.get_by_role("button", name="Chicago", exact=True).click()
    check(bot_messages(page, "What time should I send your daily check-in")).to_be_visible()
    screens(page, "check-in-time")
    page.get_by_role("button", name="09:00", exact=True).click()
    page.get_by_role("button", name=re.compile(r"^Keep 22:00")).click()
    done = bot_messages(page, "You're all set")
    check(done).to_contain_text("09:00 (America/Chicago)")
    check(page.locator("#person-summary")).to_contain_text("P-201 · active")
    screens(page, "enrolled")

    send(page, "I want to kill myself tonight")
    crisis = bot_messages(page, "Please call 911 now")
    check(crisis).to_be_visible()
    check(crisis).to_contain_text("988")
    check(bot_messages(page, "I've let your care team know")).to_be_visible()
    check(page.locator("li.msg.from-you").last).to_contain_text("I want to kill myself tonight")
    # The chat is taller than the window by now: the newest reply is scrolled into view, above the
    # composer (before, a newcomer saw no answer and thought the bot had not replied).
    assert page.evaluate("document.documentElement.scrollHeight > window.innerHeight")
    page.wait_for_function(NEWEST_IN_VIEW, timeout=5000)
    # The crisis line's chat address is a link that opens in a new tab.
    chat_link = crisis.get_by_role("link", name=re.compile(r"988lifeline\.org"))
    check(chat_link).to_have_attribute("target", "_blank")
    screens(page, "crisis-reply")

    page.get_by_role("navigation", name="Who are you?").get_by_role("link", name="Dr. Rivera – therapist").click()
    check(page).to_have_url(re.compile(r"\?as=therapist$"))
    check(page.locator("#chat-title")).to_contain_text("Dr. Rivera")
    seeded = bot_messages(page, "Safety alert: URGENT").filter(has_text="P-102")
    check(seeded).to_be_visible()  # the demo's participant with an open alert
    alert = bot_messages(page, "Safety alert: IMMINENT").filter(has_text="P-201")
    check(alert).to_be_visible()
    check(alert).to_contain_text("the assigned clinician")
    assert "kill myself" not in alert.inner_text()  # the words stay out of alerts by default
    check(alert.get_by_role("button")).to_have_text(["Acknowledge", "I contacted them", "False alarm", "Reassign"])
    screens(page, "therapist-alert")

    alert.get_by_role("button", name="Acknowledge").click()
    check(page.locator("#notice")).to_contain_text("Acknowledged. Paging stopped.")
    check(alert).to_contain_text("Acknowledged by dr-rivera")
    # Acknowledged is not the end: the buttons now ask how it ended.
    check(alert.get_by_role("button")).to_have_text(["Reached them, safe", "Safety plan reviewed",
                                                     "Sent to emergency care", "Could not reach them", "False alarm"])
    check(seeded.get_by_role("button", name="Acknowledge")).to_be_visible()  # the other alert is still open
    screens(page, "acknowledged")

    replies = page.locator("li.msg.from-bot")
    before = replies.count()
    send(page, "/alerts")
    # The seeded alert, still unacknowledged, first; then P-201's: acknowledged, no outcome yet.
    check(replies).to_have_count(before + 2)
    check(replies.nth(before)).to_contain_text("URGENT – P-102")
    check(replies.last).to_contain_text("P-201")
    check(replies.last).to_contain_text("No outcome recorded yet")


def test_keyboard_alone_sends_messages_and_presses_buttons(page: Any, sandbox: RunningSandbox) -> None:
    check, screens = expect(), Screens("keyboard-only")
    page.goto(f"{sandbox.url}/?as=alex")
    check(page.locator("#chat")).to_be_visible()
    check(page.locator("#messages")).to_have_attribute("role", "log")
    check(page.locator("#messages")).to_have_attribute("aria-live", "polite")

    # The first Tab reaches the skip link; further Tabs reach the message box through the page.
    page.keyboard.press("Tab")
    check(page.locator(":focus")).to_have_text("Skip to the message box")
    for _ in range(60):
        if page.evaluate("document.activeElement.id") == "composer-input":
            break
        page.keyboard.press("Tab")
    else:
        pytest.fail("Tab never reached the message box")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # focus is visible
    page.keyboard.type("/settings")
    page.keyboard.press("Enter")
    summary = bot_messages(page, "Daily check-in: 09:00")
    check(summary).to_be_visible()
    check(page.get_by_role("textbox", name="Message to the bot")).to_be_focused()
    check(page.get_by_role("textbox", name="Message to the bot")).to_have_value("")
    screens(page, "settings-by-keyboard")

    # Back up with Shift+Tab to a button under the bot's message, and press it with Enter.
    for _ in range(30):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.textContent") == "Check-in time":
            break
    else:
        pytest.fail("Shift+Tab never reached the 'Check-in time' button")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    check(bot_messages(page, "What time should I send")).to_be_visible()
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "08:00":
            break
    else:
        pytest.fail("Tab never reached the '08:00' button")
    page.keyboard.press("Space")
    check(bot_messages(page, "Daily check-in: 08:00")).to_be_visible()
    screens(page, "button-by-keyboard")

    # Everything a screen reader announces as a control has a name.
    unnamed = page.evaluate("""() => [...document.querySelectorAll('button, a[href], input')]
        .filter((el) => el.offsetParent !== null)
        .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim() || el.labels?.length))
        .map((el) => el.outerHTML)""")
    assert unnamed == []
    check(page.get_by_role("group", name="Move the bot's clock forward")).to_be_visible()


def test_moving_the_clock_pages_the_backup_and_brings_a_check_in(page: Any, sandbox: RunningSandbox) -> None:
    check, screens = expect(), Screens("clock-backup-checkin")
    page.goto(f"{sandbox.url}/?as=backup")
    check(page.locator("#chat-title")).to_contain_text("Dr. Okafor")
    check(page.locator("#clock-now")).not_to_have_text("…")
    before = page.locator("#clock-now").inner_text()
    check(bot_messages(page, "Welcome, dr-okafor")).to_be_visible()
    check(bot_messages(page, "Safety alert:")).to_have_count(0)

    # The seeded alert is urgent: 30 minutes for the therapist, then the on-call backup is paged.
    page.get_by_role("button", name="+1 hour").click()
    check(page.locator("#clock-status")).to_contain_text("Moved to +1 hour")
    assert page.locator("#clock-now").inner_text() != before
    backup_alert = bot_messages(page, "Safety alert: URGENT").filter(has_text="P-102")
    check(backup_alert).to_contain_text("backup on call")
    screens(page, "backup-paged")

    page.goto(f"{sandbox.url}/?as=alex")
    for _ in range(4):  # the next check-in may be another participant's
        if bot_messages(page, "Time for your daily check-in").count():
            break
        page.get_by_role("button", name="Next check-in").click()
        check(page.locator("#clock-status")).to_contain_text("Moved to the next check-in")
        page.wait_for_timeout(1000)  # let the page's long poll bring what the scheduler sent
    checkin = bot_messages(page, "Time for your daily check-in").last
    check(checkin).to_contain_text("How is your mood right now?")
    screens(page, "check-in-arrived")

    checkin.get_by_role("button", name="7", exact=True).click()
    check(bot_messages(page, "cravings").last).to_be_visible()
    bot_messages(page, "cravings").last.get_by_role("button", name="2", exact=True).click()
    check(bot_messages(page, "hours did you sleep").last).to_be_visible()
    bot_messages(page, "hours did you sleep").last.get_by_role("button", name="7", exact=True).click()
    check(bot_messages(page, "medication").last).to_be_visible()
    bot_messages(page, "medication").last.get_by_role("button", name="Yes", exact=True).click()
    check(bot_messages(page, "thoughts of hurting yourself").last).to_be_visible()
    bot_messages(page, "thoughts of hurting yourself").last.get_by_role("button", name="No", exact=True).click()
    check(bot_messages(page, "anything you want your care team to know").last).to_be_visible()
    send(page, "Group helped today.")
    check(bot_messages(page, "Thank you for checking in")).to_be_visible()
    screens(page, "check-in-done")


def tiny_png(width: int = 40, height: int = 20) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x30\x80\xd0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_bot_html_is_rendered_safely_and_photos_and_documents_open(page: Any, sandbox: RunningSandbox) -> None:
    check, screens = expect(), Screens("rendering-and-files")
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:  # an alert() would mean the page ran the bot's text as code
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(f"{sandbox.url}/?as=sam")
    check(page.locator("#chat")).to_be_visible()

    # Straight to the Bot API, as the bot would send it: allowed markup, a script link, escaped
    # tags and a tag Telegram knows but this page does not render.
    api = f"{sandbox.bot_api}/bot{DEFAULT_TOKEN}"
    tricky = ('<b>bold</b> <i>slanted</i> <code>/checkin</code> <a href="javascript:alert(1)">click</a> '
              '&lt;img src=x onerror=alert(1)&gt; <blockquote>quoted</blockquote>')
    sent = page.request.post(f"{api}/sendMessage", data={"chat_id": 2002, "text": tricky, "parse_mode": "HTML"})
    assert sent.ok, sent.text()
    shown = bot_messages(page, "slanted")
    check(shown).to_be_visible()
    check(shown.locator("b")).to_have_text("bold")
    check(shown.locator("i")).to_have_text("slanted")
    check(shown.locator("code")).to_have_text("/checkin")
    check(shown).to_contain_text("<img src=x onerror=alert(1)>")  # shown as text, never as an element
    check(shown).to_contain_text("<blockquote>quoted</blockquote>")
    assert shown.locator("img, blockquote, script").count() == 0
    assert shown.locator("a").count() == 0  # a javascript: link stays plain text

    photo = page.request.post(f"{api}/sendPhoto", multipart={
        "chat_id": "2002", "caption": "Your mood this week",
        "photo": {"name": "mood.png", "mimeType": "image/png", "buffer": tiny_png()},
    })
    assert photo.ok, photo.text()
    picture = page.get_by_role("img", name="Picture from the bot: Your mood this week")
    check(picture).to_be_visible()
    assert picture.evaluate("img => img.naturalWidth") == 40  # the bytes really arrived

    send(page, "/mydata")
    download = page.locator("li.msg.from-bot a.document").last
    check(download).to_contain_text(".json")
    check(download).to_have_attribute("download", re.compile(r"\.json$"))
    response = page.request.get(sandbox.url + download.get_attribute("href"))
    assert response.ok and response.headers["content-disposition"].startswith("attachment")
    assert response.json()["alias"] == "P-102"
    screens(page, "html-photo-document")
    assert dialogs == []


def test_a_member_reads_and_writes_in_the_cohort_group_chat(page: Any, sandbox: RunningSandbox) -> None:
    check, screens = expect(), Screens("group-chat")
    page.goto(f"{sandbox.url}/?as=sam")
    page.get_by_role("link", name="Group chat").click()
    check(page).to_have_title(re.compile("Evening IOP peer chat"))
    check(page.locator("li.msg.from-peer").filter(has_text="I cooked dinner at home")).to_contain_text("Alex")
    box = page.get_by_role("textbox", name="Message to the group")
    box.fill("Glad to be here with you all.")
    box.press("Enter")
    check(page.locator("li.msg.from-you").filter(has_text="Glad to be here with you all.")).to_be_visible()
    screens(page, "group-chat")
