"""Edited messages: assessed by the safety middlewares, never answered as a new message.

The bot asks Telegram for `edited_message` updates because this router handles them (aiogram's
`resolve_used_update_types`). By the time this handler runs, the safety gate has assessed the new
text (a flagged edit gets the crisis reply at once) and FlagRecorder has stored it with its
escalation, exactly as for a new message. Nothing else happens: an edit is not a new answer to a
check-in, an exercise or a question, so no dialog handler runs again.
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import Message

log = logging.getLogger(__name__)

router = Router(name="edits")


@router.edited_message()
async def edited(message: Message) -> None:
    log.debug("edited message %s in chat %s assessed; not handled as a new one", message.message_id, message.chat.id)
