"""What support persons and the participants who invite them see: texts and buttons, from
content/<locale>/ui/support.toml. Callback data carry ids and codes, never names."""

from __future__ import annotations

from collections.abc import Sequence

from bot.context import AppContext
from bot.db.support_models import SHAREABLE, SupportPerson, SupportStatus
from bot.messaging import Choice, Keyboard, keyboard
from bot.services.support.checkins import SCORES

# Callback data (all under 64 bytes).
INVITE = "sup:new"
SHARE_TOGGLE = "sup:tg:"  # + item: while inviting, or changing (then + ":" + support person id)
SHARE_DONE = "sup:ok"  # the invite's choices are done: show the consent
CREATE = "sup:create"  # the participant consents: make the link
CANCEL = "sup:cancel"
KEEP = "sup:keep"
CHANGE = "sup:chg:"  # + id: change what is shared
SAVE = "sup:save:"  # + id
REVOKE = "sup:rv:"  # + id: asks first
REVOKE_YES = "sup:rvy:"  # + id
AGREE = "spc:yes"  # the support person's own consent
DECLINE = "spc:no"
LANGUAGE = "spc:lang:"  # + locale
SCORE = "spck:"  # + checkin id + ":" + score
SKIP_NOTE = "spck:skip"
READ = "spf:"  # + family read id
LEAVE_YES = "spstop:yes"
LEAVE_NO = "spstop:no"


def shares_words(ctx: AppContext, items: frozenset[str], locale: str) -> str:
    """What the participant shares, in words: "nothing", "attendance and whether they checked in"."""
    if not items:
        return ctx.t("support.share_nothing", locale)
    return ctx.t("support.share_and", locale).join(ctx.t(f"support.share_{s}", locale) for s in SHAREABLE
                                                   if s in items)


def share_keyboard(ctx: AppContext, items: frozenset[str], locale: str, *, done: str,
                   suffix: str = "") -> Keyboard:
    """Toggles for what is shared (✅ when chosen), then Done."""
    rows: list[list[Choice]] = [[((("✅ " if s in items else "▫️ ") + ctx.t(f"support.share_button_{s}", locale)),
                                  f"{SHARE_TOGGLE}{s}{suffix}")] for s in SHAREABLE]
    rows.append([(ctx.t("support.share_done", locale), done)])
    return keyboard(rows)


def overview(ctx: AppContext, locale: str, people: Sequence[tuple[SupportPerson, frozenset[str]]],
             may_invite_more: bool) -> tuple[str, Keyboard | None]:
    """The participant's /support: each support person, what they see, and the buttons."""
    lines = [ctx.t("support.title", locale)]
    rows: list[list[Choice]] = []
    if not people:
        lines.append(ctx.t("support.none", locale))
    for number, (person, items) in enumerate(people, start=1):
        state = ctx.t(f"support.state_{person.status}", locale)
        lines.append(ctx.t("support.row", locale, number=number, name=person.label, state=state,
                           shares=shares_words(ctx, items, locale)))
        rows.append([(ctx.t("support.change", locale, number=number), f"{CHANGE}{person.id}"),
                     (ctx.t("support.revoke", locale, number=number), f"{REVOKE}{person.id}")])
    lines.append(ctx.t("support.never_shared", locale))
    if may_invite_more:
        rows.insert(0, [(ctx.t("support.invite", locale), INVITE)])
    return "\n\n".join(lines), keyboard(rows) if rows else None


def consent_keyboard(ctx: AppContext, locale: str) -> Keyboard:
    other = "es" if locale == "en" else "en"
    return keyboard([[(ctx.t("support.consent_agree", locale), AGREE)],
                     [(ctx.t("support.consent_decline", locale), DECLINE)],
                     [(ctx.t("support.consent_switch", other), f"{LANGUAGE}{other}")]])


def checkin_keyboard(checkin_id: int) -> Keyboard:
    scores = [(str(n), f"{SCORE}{checkin_id}:{n}") for n in SCORES]
    return keyboard([scores[:6], scores[6:]])


def family_keyboard(ctx: AppContext, reads: Sequence[tuple[str, str]]) -> Keyboard:
    """One button per family read: (id, title)."""
    return keyboard([[(title, f"{READ}{read_id}")] for read_id, title in reads])


def is_current(person: SupportPerson) -> bool:
    return person.status in (SupportStatus.INVITED, SupportStatus.CONSENT_PENDING, SupportStatus.ACTIVE)
