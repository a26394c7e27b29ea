"""The updates waiting for the bot: numbered, filtered by the kinds the bot asked for, handed out by
getUpdates (offset, limit) or offered to the webhook, and replayed once when re-injected."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bot.sandbox.botapi.errors import ControlError, bad_request
from bot.sandbox.botapi.params import Params
from bot.sandbox.botapi.waiting import Pulse

# What a bot gets when it never set allowed_updates (or set it to []): every kind but these.
NOT_SENT_BY_DEFAULT: Final = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


@dataclass
class Pending:
    seq: int
    update: dict[str, Any]
    # A re-injected update_id is handed out once even if below the offset, so tests can replay.
    replay: bool = False
    handed_out: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


class UpdateQueue:
    """Pending updates in arrival order. `pulse` fires when one arrives (or a long poll must end);
    `on_enqueue` sees each new entry (the webhook takes it from there when one is set)."""

    def __init__(self, first_update_id: int) -> None:
        # Kept across clear(): a polling bot holding offset N would never see a restarted update_id below N.
        self.next_update_id = first_update_id
        self._seq = itertools.count(1)
        # The update kinds the bot asked for (getUpdates or setWebhook); None: Telegram's default.
        self.allowed_updates: frozenset[str] | None = None
        self.pulse = Pulse()
        self.on_enqueue: Callable[[Pending], None] = lambda entry: None
        self.pending: dict[int, Pending] = {}

    def clear(self) -> None:
        self.pending = {}

    def push(self, body: dict[str, Any]) -> int:
        """Queue an update with the next update_id; returns it."""
        update_id = self.next_update_id
        self.next_update_id += 1
        self._enqueue({"update_id": update_id, **body}, replay=False)
        return update_id

    def inject(self, update: dict[str, Any]) -> int:
        """Queue a raw update as given (malformed or unknown kinds too). Without update_id it gets
        the next one; with an earlier update_id it is a replay, handed out again once."""
        if not isinstance(update, dict):
            raise ControlError("an update must be a JSON object")
        update = dict(update)
        given = update.get("update_id")
        if given is None:
            update["update_id"] = self.next_update_id
        elif not isinstance(given, int) or isinstance(given, bool):
            raise ControlError("update_id must be an integer")
        update_id = int(update["update_id"])
        replay = update_id < self.next_update_id and given is not None
        self.next_update_id = max(self.next_update_id, update_id + 1)
        self._enqueue(update, replay=replay)
        return update_id

    def _enqueue(self, update: dict[str, Any], *, replay: bool) -> None:
        entry = Pending(seq=next(self._seq), update=update, replay=replay)
        self.pending[entry.seq] = entry
        self.on_enqueue(entry)
        self.pulse.fire()

    def set_allowed_updates(self, params: Params) -> None:
        """`allowed_updates` as Telegram takes it: absent keeps the last setting; [] is the default."""
        given = params.obj("allowed_updates")
        if given is None:
            return
        if not isinstance(given, list) or not all(isinstance(kind, str) for kind in given):
            raise bad_request("can't parse allowed updates: an Array of String is expected")
        self.allowed_updates = frozenset(given) or None

    def wanted(self, update: Mapping[str, Any]) -> bool:
        kind = next((key for key in update if key != "update_id"), None)
        if kind is None:
            return True
        if self.allowed_updates is None:
            return kind not in NOT_SENT_BY_DEFAULT
        return kind in self.allowed_updates

    def take(self, offset: int | None, limit: int) -> list[dict[str, Any]]:
        """What one getUpdates call hands out, after confirming (dropping) what `offset` says."""
        if offset is not None and offset < 0:  # -N: keep only the last N updates
            for seq in list(self.pending)[:offset]:
                del self.pending[seq]
        elif offset is not None:  # confirms every update below offset
            for seq, entry in list(self.pending.items()):
                if entry.update_id < offset and (entry.handed_out or not entry.replay):
                    del self.pending[seq]
        for seq, entry in list(self.pending.items()):
            if not self.wanted(entry.update):  # a kind the bot did not ask for: Telegram never sends it
                del self.pending[seq]
        batch = sorted(itertools.islice(self.pending.values(), limit), key=lambda e: e.update_id)
        for entry in batch:
            entry.handed_out = True
        return [entry.update for entry in batch]
