"""Group mode: supergroups with members, join requests, invite links, and the Bot API methods that
manage them, as Telegram answers them; plus what tests do in a group (create it with the bot as an
admin, write in it, ask to join with a link, add or remove someone).

Telegram's rules kept here: the bot must be an administrator to make links, decide join requests,
ban, restrict, or delete someone else's message (and only within 48 hours); a join-request link
cannot also have a member limit; a request can be decided once; an administrator cannot be banned;
a revoked or expired link does not work. A group made with `is_forum` has Topics: an admin bot may
create and close forum topics (the title 1-128 characters), a member writes in one with its
`message_thread_id`, and only admins write in a closed one. Every change of a member is a `chat_member` update (sent
only when the bot asked for them, as Telegram does), the bot's own a `my_chat_member` update.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.botapi.errors import BotAPIError, ControlError, bad_request
from bot.sandbox.botapi.params import Params
from bot.sandbox.botapi.state import Chats, _mark_command

INSIDE = frozenset({"creator", "administrator", "member", "restricted"})
DELETE_WINDOW_SECONDS = 48 * 3600
_SEND_RIGHTS = ("can_send_messages", "can_send_audios", "can_send_documents", "can_send_photos", "can_send_videos",
                "can_send_video_notes", "can_send_voice_notes", "can_send_polls", "can_send_other_messages",
                "can_add_web_page_previews", "can_react_to_messages")
_ADMIN_RIGHTS = ("can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
                 "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
                 "can_edit_stories", "can_delete_stories", "can_send_welcome_messages")


@dataclass
class Member:
    status: str  # creator | administrator | member | restricted | left | kicked
    until_date: int = 0
    permissions: dict[str, bool] = field(default_factory=dict)


@dataclass
class InviteLink:
    link: str
    name: str | None
    expire_date: int | None
    creates_join_request: bool
    member_limit: int | None
    revoked: bool = False


@dataclass
class Topic:
    message_thread_id: int
    name: str
    closed: bool = False


@dataclass
class GroupState:
    chat_id: int
    title: str
    is_forum: bool = False
    topics: dict[int, Topic] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    requests: dict[int, dict[str, Any]] = field(default_factory=dict)  # user id -> the pending request
    links: dict[str, InviteLink] = field(default_factory=dict)
    decided: list[dict[str, Any]] = field(default_factory=list)  # approvals and declines, in order

    def status(self, user_id: int) -> str:
        member = self.members.get(user_id)
        return member.status if member else "left"


class Groups:
    """The groups, over the chats (messages live in the same `ChatState`s as private chats)."""

    def __init__(self, chats: Chats, push: Callable[[dict[str, Any]], int]) -> None:
        self._chats = chats
        self._push = push
        self._link_seq = itertools.count(1)
        self.groups: dict[int, GroupState] = {}

    def clear(self) -> None:
        self.groups = {}

    @property
    def bot_id(self) -> int:
        return int(self._chats.bot_user["id"])

    # ---- shapes ------------------------------------------------------------------------------

    def chat_json(self, chat_id: int) -> dict[str, Any]:
        group = self.groups[chat_id]
        out: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": group.title}
        if group.is_forum:
            out["is_forum"] = True
        return out

    def _user(self, user_id: int) -> dict[str, Any]:
        if user_id == self.bot_id:
            return self._chats.bot_as_sender()
        return dict(self._chats.remember_user(user_id, None))

    def member_json(self, group: GroupState, user_id: int) -> dict[str, Any]:
        member = group.members.get(user_id) or Member("left")
        out: dict[str, Any] = {"user": self._user(user_id), "status": member.status}
        if member.status == "administrator":
            out.update({"can_be_edited": False, "is_anonymous": False, **dict.fromkeys(_ADMIN_RIGHTS, True)})
        elif member.status == "creator":
            out["is_anonymous"] = False
        elif member.status == "restricted":
            out.update({"is_member": True, "until_date": member.until_date, "can_edit_tag": False,
                        "can_change_info": False, "can_invite_users": True, "can_pin_messages": False,
                        "can_manage_topics": False, **{k: member.permissions.get(k, False) for k in _SEND_RIGHTS}})
        elif member.status == "kicked":
            out["until_date"] = member.until_date
        return out

    def link_json(self, link: InviteLink) -> dict[str, Any]:
        out: dict[str, Any] = {"invite_link": link.link, "creator": self._chats.bot_as_sender(),
                               "creates_join_request": link.creates_join_request, "is_primary": False,
                               "is_revoked": link.revoked}
        out.update({k: v for k, v in (("name", link.name), ("expire_date", link.expire_date),
                                      ("member_limit", link.member_limit)) if v is not None})
        return out

    def _change(self, group: GroupState, user_id: int, new: Member, *, by: int,
                invite: InviteLink | None = None) -> None:
        """Set a member's status and tell the bot, as Telegram does (chat_member / my_chat_member)."""
        old = self.member_json(group, user_id)
        group.members[user_id] = new
        kind = "my_chat_member" if user_id == self.bot_id else "chat_member"
        body: dict[str, Any] = {"chat": self.chat_json(group.chat_id), "from": self._user(by),
                                "date": self._chats.now(), "old_chat_member": old,
                                "new_chat_member": self.member_json(group, user_id)}
        if invite is not None:
            body["invite_link"] = self.link_json(invite)
        self._push({kind: body})
        self._chats.pulse.fire()

    # ---- what tests do -------------------------------------------------------------------------

    def create(self, chat_id: int, title: str = "Group", *, owner_id: int, bot_admin: bool = True,
               members: list[int] | None = None, is_forum: bool = False) -> dict[str, Any]:
        """A supergroup made by `owner_id`, who adds the bot (as an admin unless told otherwise);
        with Topics turned on when `is_forum`."""
        chat_id = int(chat_id)
        if chat_id >= 0:
            raise ControlError("a group's chat_id is negative (supergroups look like -100...)")
        if chat_id in self.groups:
            raise ControlError(f"group {chat_id} exists already")
        group = self.groups[chat_id] = GroupState(chat_id, title, is_forum=bool(is_forum))
        self._chats.chat(chat_id)
        group.members[int(owner_id)] = Member("creator")
        for user_id in members or []:
            group.members[int(user_id)] = Member("member")
        self._change(group, self.bot_id, Member("administrator" if bot_admin else "member"), by=int(owner_id))
        return self.view(chat_id)

    def group(self, chat_id: int) -> GroupState:
        group = self.groups.get(int(chat_id))
        if group is None:
            raise ControlError(f"there is no group {chat_id}; create it first")
        return group

    def set_bot_admin(self, chat_id: int, admin: bool, *, by: int) -> None:
        group = self.group(chat_id)
        self._change(group, self.bot_id, Member("administrator" if admin else "member"), by=int(by))

    def write(self, chat_id: int, user_id: int, text: str, *, reply_to_message_id: int | None = None,
              first_name: str | None = None, message_thread_id: int | None = None) -> dict[str, Any]:
        """`user_id` writes `text` in the group (they must be in it, and allowed to write), in the
        forum topic `message_thread_id` when given."""
        group = self.group(chat_id)
        user_id = int(user_id)
        member = group.members.get(user_id)
        if member is None or member.status not in INSIDE:
            raise ControlError(f"user {user_id} is not in group {chat_id} (status {group.status(user_id)})")
        if member.status == "restricted" and not member.permissions.get("can_send_messages", False) and (
                member.until_date == 0 or member.until_date > self._chats.now()):
            raise ControlError(f"user {user_id} is muted in group {chat_id}: Telegram would not let them write")
        topic = None
        if message_thread_id is not None:
            topic = group.topics.get(int(message_thread_id))
            if topic is None:
                raise ControlError(f"group {chat_id} has no topic {message_thread_id}")
            if topic.closed and member.status not in ("creator", "administrator"):
                raise ControlError(f"topic {message_thread_id} is closed: Telegram would not let user {user_id} "
                                   "write in it")
        user = self._chats.remember_user(user_id, first_name)
        chat = self._chats.chat(int(chat_id))
        message: dict[str, Any] = {"message_id": chat.take_message_id(), "date": self._chats.now(),
                                   "chat": self.chat_json(group.chat_id), "from": dict(user), "text": text}
        if topic is not None:
            message.update(message_thread_id=topic.message_thread_id, is_topic_message=True)
        _mark_command(message)
        if reply_to_message_id is not None:
            target = chat.user_messages.get(int(reply_to_message_id))
            if target is None:
                raise ControlError(f"group {chat_id} has no user message {reply_to_message_id} to reply to")
            message["reply_to_message"] = {k: target[k] for k in ("message_id", "date", "chat", "from", "text")}
        chat.user_messages[message["message_id"]] = {**message, "deleted": False}
        update_id = self._push({"message": message})
        return {"update_id": update_id, "message": message}

    def request_join(self, user_id: int, invite_link: str, *, first_name: str | None = None) -> dict[str, Any]:
        """`user_id` opens an invite link: a join request (or, for a plain link, they are in)."""
        user_id = int(user_id)
        found = next(((g, g.links[invite_link]) for g in self.groups.values() if invite_link in g.links), None)
        if found is None:
            raise ControlError(f"no group has the invite link {invite_link!r}")
        group, link = found
        if link.revoked or (link.expire_date is not None and link.expire_date <= self._chats.now()):
            raise ControlError("this invite link has expired or was revoked: Telegram would say so to the user")
        if group.status(user_id) in INSIDE:
            raise ControlError(f"user {user_id} is already in group {group.chat_id}")
        if group.status(user_id) == "kicked":
            raise ControlError(f"user {user_id} is banned from group {group.chat_id}")
        user = self._chats.remember_user(user_id, first_name)
        if not link.creates_join_request:
            self._change(group, user_id, Member("member"), by=user_id, invite=link)
            return {"joined": True}
        request = {"chat": self.chat_json(group.chat_id), "from": dict(user), "user_chat_id": user_id,
                   "date": self._chats.now(), "invite_link": self.link_json(link)}
        group.requests[user_id] = request
        return {"update_id": self._push({"chat_join_request": request}), "chat_join_request": request}

    def add(self, chat_id: int, user_id: int, *, by: int) -> None:
        """An admin adds `user_id` straight into the group (no request)."""
        self._change(self.group(chat_id), int(user_id), Member("member"), by=int(by))

    def leave(self, chat_id: int, user_id: int) -> None:
        group = self.group(chat_id)
        if group.status(int(user_id)) not in INSIDE:
            raise ControlError(f"user {user_id} is not in group {chat_id}")
        self._change(group, int(user_id), Member("left"), by=int(user_id))

    def view(self, chat_id: int) -> dict[str, Any]:
        group = self.group(chat_id)
        return {
            "chat_id": group.chat_id, "title": group.title,
            "members": {str(u): self.member_json(group, u)["status"] for u in group.members},
            "muted_until": {str(u): m.until_date for u, m in group.members.items() if m.status == "restricted"},
            "join_requests": sorted(group.requests),
            "is_forum": group.is_forum,
            "topics": [{"message_thread_id": t.message_thread_id, "name": t.name, "closed": t.closed}
                       for t in group.topics.values()],
            "decided": list(group.decided),
            "invite_links": [self.link_json(link) for link in group.links.values()],
        }

    # ---- the Bot API methods -------------------------------------------------------------------

    def table(self) -> list[tuple[str, Callable[[Params], Awaitable[Any]]]]:
        return [
            ("createChatInviteLink", self._create_link), ("revokeChatInviteLink", self._revoke_link),
            ("approveChatJoinRequest", self._approve), ("declineChatJoinRequest", self._decline),
            ("banChatMember", self._ban), ("unbanChatMember", self._unban),
            ("restrictChatMember", self._restrict), ("getChatMember", self._get_member),
            ("getChatAdministrators", self._get_admins), ("leaveChat", self._leave_chat),
            ("createForumTopic", self._create_topic), ("closeForumTopic", self._close_topic),
        ]

    def _known(self, params: Params) -> GroupState:
        chat_id = params.chat_id()
        group = self.groups.get(chat_id)
        if group is None:
            raise bad_request("chat not found")
        if group.status(self.bot_id) not in INSIDE:
            raise BotAPIError(403, "Forbidden: bot is not a member of the supergroup chat")
        return group

    def _admin(self, params: Params) -> GroupState:
        group = self._known(params)
        if group.status(self.bot_id) != "administrator":
            raise bad_request("not enough rights to do that (the bot is not an administrator)")
        return group

    def _user_id(self, params: Params) -> int:
        user_id = params.integer("user_id")
        if user_id is None:
            raise bad_request("user_id is empty")
        return user_id

    async def _create_link(self, params: Params) -> dict[str, Any]:
        group = self._admin(params)
        joins, limit = params.flag("creates_join_request"), params.integer("member_limit")
        if joins and limit is not None:
            raise bad_request("member limit can't be specified for links requiring administrator approval")
        name = params.text("name")
        if name is not None and len(name) > 32:
            raise bad_request("invite link name is too long")
        link = InviteLink(f"https://t.me/+sandbox{next(self._link_seq)}{secrets.token_hex(4)}", name,
                          params.integer("expire_date"), joins, limit)
        group.links[link.link] = link
        return self.link_json(link)

    async def _revoke_link(self, params: Params) -> dict[str, Any]:
        group = self._admin(params)
        link = group.links.get(params.text("invite_link") or "")
        if link is None:
            raise bad_request("INVITE_HASH_EXPIRED")
        link.revoked = True
        return self.link_json(link)

    def _decide(self, params: Params, approve: bool) -> bool:
        group = self._admin(params)
        user_id = self._user_id(params)
        request = group.requests.pop(user_id, None)
        if request is None:
            raise bad_request("HIDE_REQUESTER_MISSING")
        group.decided.append({"user_id": user_id, "approved": approve, "date": self._chats.now()})
        if approve:
            link = group.links.get((request.get("invite_link") or {}).get("invite_link", ""))
            self._change(group, user_id, Member("member"), by=self.bot_id, invite=link)
        self._chats.pulse.fire()
        return True

    async def _approve(self, params: Params) -> bool:
        return self._decide(params, True)

    async def _decline(self, params: Params) -> bool:
        return self._decide(params, False)

    async def _ban(self, params: Params) -> bool:
        group = self._admin(params)
        user_id = self._user_id(params)
        if group.status(user_id) in ("creator", "administrator"):
            raise bad_request("user is an administrator of the chat")
        self._change(group, user_id, Member("kicked", until_date=params.integer("until_date") or 0), by=self.bot_id)
        return True

    async def _unban(self, params: Params) -> bool:
        group = self._admin(params)
        user_id = self._user_id(params)
        status = group.status(user_id)
        if status == "kicked":
            self._change(group, user_id, Member("left"), by=self.bot_id)
        elif status in INSIDE and not params.flag("only_if_banned"):
            # Without only_if_banned, Telegram removes a member who is in the chat.
            self._change(group, user_id, Member("left"), by=self.bot_id)
        return True

    async def _restrict(self, params: Params) -> bool:
        group = self._admin(params)
        user_id = self._user_id(params)
        if group.status(user_id) in ("creator", "administrator"):
            raise bad_request("user is an administrator of the chat")
        if group.status(user_id) not in INSIDE:
            raise bad_request("USER_NOT_PARTICIPANT")
        permissions = params.obj("permissions")
        if not isinstance(permissions, dict):
            raise bad_request('field "permissions" must be a ChatPermissions object')
        everything = all(permissions.get(k, False) for k in _SEND_RIGHTS)
        new = Member("member") if everything else Member(
            "restricted", until_date=params.integer("until_date") or 0,
            permissions={k: bool(permissions.get(k, False)) for k in _SEND_RIGHTS})
        self._change(group, user_id, new, by=self.bot_id)
        return True

    def _forum(self, params: Params) -> GroupState:
        group = self._admin(params)
        if not group.is_forum:
            raise bad_request("the chat is not a forum")
        return group

    async def _create_topic(self, params: Params) -> dict[str, Any]:
        group = self._forum(params)
        name = params.text("name") or ""
        if not name.strip():
            raise bad_request("TOPIC_TITLE_EMPTY")
        if len(name) > 128:
            raise bad_request("TOPIC_TITLE_TOO_LONG")
        # A topic's id is the id of the service message that opens it.
        topic = Topic(self._chats.chat(group.chat_id).take_message_id(), name)
        group.topics[topic.message_thread_id] = topic
        self._chats.pulse.fire()
        return {"message_thread_id": topic.message_thread_id, "name": name, "icon_color": 7322096}

    async def _close_topic(self, params: Params) -> bool:
        group = self._forum(params)
        topic = group.topics.get(params.integer("message_thread_id") or 0)
        if topic is None:
            raise bad_request("TOPIC_ID_INVALID")
        if topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = True
        self._chats.pulse.fire()
        return True

    def check_topic(self, chat_id: int, message_thread_id: int) -> None:
        """sendMessage with a message_thread_id: a topic of that forum group."""
        group = self.groups.get(chat_id)
        if group is None or not group.is_forum or message_thread_id not in group.topics:
            raise bad_request("message thread not found")

    async def _get_member(self, params: Params) -> dict[str, Any]:
        group = self._known(params)
        return self.member_json(group, self._user_id(params))

    async def _get_admins(self, params: Params) -> list[dict[str, Any]]:
        group = self._known(params)
        admins = [u for u, m in group.members.items() if m.status in ("creator", "administrator")]
        return [self.member_json(group, u) for u in admins]

    async def _leave_chat(self, params: Params) -> bool:
        group = self._known(params)
        self._change(group, self.bot_id, Member("left"), by=self.bot_id)
        return True

    # ---- used by sendMessage and deleteMessage --------------------------------------------------

    def check_can_post(self, chat_id: int) -> None:
        group = self.groups.get(chat_id)
        if group is not None and group.status(self.bot_id) not in INSIDE:
            raise BotAPIError(403, "Forbidden: bot is not a member of the supergroup chat")

    def delete_user_message(self, chat_id: int, message: dict[str, Any]) -> None:
        """Deleting someone's message in a group: an admin's right, within 48 hours."""
        group = self.groups[chat_id]
        if group.status(self.bot_id) != "administrator":
            raise bad_request("message can't be deleted")
        if self._chats.now() - int(message.get("date", 0)) > DELETE_WINDOW_SECONDS:
            raise bad_request("message can't be deleted for everyone")
        message["deleted"] = True
