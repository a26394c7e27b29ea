"""A local imitation of the Telegram Bot API, for tests, benchmarks and the sandbox.

What it is
----------
`FakeBotAPI` is an aiohttp application that answers ``/bot<token>/<method>`` on 127.0.0.1 the way
api.telegram.org does, so the real aiogram client and the real ``iopbot run`` process talk HTTP to
it unchanged (point ``[telegram] api_base`` at it). It keeps all state in memory:

* every chat's messages from the bot, with their buttons, edits, deletions and files;
* updates waiting for the bot: handed out by ``getUpdates`` (offset, limit, long-poll timeout), or
  POSTed to a webhook with the secret header and retried while the webhook does not answer 2xx
  (a Bot API call the webhook puts in its answer, as aiogram can, is run like Telegram runs it);
  only the kinds the bot asked for with ``allowed_updates`` (getUpdates or setWebhook; kept until
  changed; by default every kind but chat_member and the reactions), as Telegram does;
* the callback queries it issued, and whether the bot answered them;
* a log of every request (method, chat, arrival time, outcome) and counters.

Tests drive it through a JSON control API under ``/_control/`` (client: `BotAPIControl`, or the same
methods on `FakeBotAPI` in-process): inject a user's message, an edit of it or a button press, read what a chat
received, script faults (429 with retry_after, 403 blocked, 5xx, slow answers, a seeded random mix),
block users, and tune the rate limits it enforces (about 30 messages/s overall and about 1/s per
chat, as token buckets). Run standalone with ``python -m bot.sandbox.botapi --port N --token T``.

Control endpoints (JSON; errors are 400 {"error": "..."}):

    POST   /_control/reset                    forget chats, updates, faults, logs (not the webhook)
    GET    /_control/stats                    counts by method and outcome, 429s, webhook deliveries
    GET    /_control/requests?method=&chat_id= the request log, in arrival order
    POST   /_control/messages                 {user_id, text, first_name?, language_code?, ...}
    POST   /_control/edits                    {user_id, message_id, text}: the user edits their message
    POST   /_control/updates                  a raw update (update_id optional; an old one replays)
    POST   /_control/callbacks                {user_id, message_id, data, chat_id?, verify?}
    GET    /_control/chats/{id}?min_messages=&timeout=   what the chat holds (optionally waits)
    GET    /_control/files/{file_id}          the bytes of an uploaded file
    POST   /_control/faults | DELETE          {method, kind, chat_id?, times?, retry_after?, status?, delay?}
    PUT    /_control/fault_mix | DELETE       {seed, retry_after_percent, server_error_percent, ...}
    POST   /_control/blocked/{id} | DELETE    {notify?}: the user blocks / unblocks the bot
    GET    /_control/rate_limits | PUT        RateLimits' fields (PUT changes only those given)
    GET    /_control/webhook                  the webhook, allowed_updates, every delivery attempt
    PUT    /_control/webhook/upstreams        {urls}: be the load balancer, round robin across workers
    GET    /_control/commands                 what setMyCommands stored, by scope and language

What it does not do
-------------------
* Only the methods the bot uses exist. Any other method answers 404 "Not Found: method not found",
  so a test fails loudly instead of passing against a method that silently does nothing.
* Private chats only; no groups, channels, inline mode, payments or business accounts.
* Files live in memory; files are never fetched by URL (that is a 400); images are not decoded
  (PNG width/height come from its header, other formats report 0x0).
* Text checks approximate Telegram's: HTML and MarkdownV2 are parsed well enough to reject
  unsupported tags and unescaped reserved characters and to measure the visible length, counted in
  UTF-16 code units (the stricter reading of "4096 characters"). Entities are not returned.
* Pending updates never expire (Telegram drops them after 24 h). An update of a kind the bot did
  not ask for is dropped when it would be handed out (Telegram never queues it); one with no
  kind at all (malformed) is handed out.
* A message is recorded when the server answers it, even if the client gave up waiting (as with a
  "slow" fault): like Telegram, a timed-out send may still have been delivered.
* Message dates follow the injected `Clock`; rate limits and retry_after follow the ``monotonic``
  callable (real time by default), since they are about how fast the client really sends.

The package, one file per job
-----------------------------
server.py     `FakeBotAPI`: the aiohttp app, each call recorded, screened, run and answered;
              the control methods tests call in-process
methods.py    the Bot API methods (getMe, getUpdates, sendMessage, editMessageText, ...)
params.py     one call's parameters (query, form, multipart, JSON), typed on access
text.py       text limits, HTML/MarkdownV2/Markdown parsing, inline keyboards
state.py      chats, users, the bot's messages, callback queries, files; their JSON shapes
updates.py    pending updates: numbering, allowed_updates, getUpdates' offset and limit, replays
webhook.py    setWebhook and delivery: lanes per chat, retries, the call in the webhook's answer,
              round robin across several workers' URLs (a load balancer)
faults.py     scripted faults, the random mix, blocked users, flood limits (TokenBucket's arithmetic)
calls.py      the request log and counts by outcome
control.py    the control API: its HTTP routes and the `BotAPIControl` client
waiting.py    pulses that wake waiters, and the shutdown that ends sleeps and long polls
errors.py     Telegram-shaped errors and the control API's
standalone.py ``python -m bot.sandbox.botapi``
"""

from bot.sandbox.botapi.calls import RequestRecord
from bot.sandbox.botapi.control import BotAPIControl
from bot.sandbox.botapi.errors import BotAPIControlError, BotAPIError, BotAPIWaitTimeout, ControlError
from bot.sandbox.botapi.faults import BLOCKED_DESCRIPTION, SEND_METHODS, Fault, FaultKind, FaultMix, RateLimits
from bot.sandbox.botapi.server import DEFAULT_TOKEN, DEFAULT_USERNAME, MAX_UPLOAD_BYTES, FakeBotAPI
from bot.sandbox.botapi.standalone import main
from bot.sandbox.botapi.state import CallbackRecord, ChatState, SentMessage, StoredFile
from bot.sandbox.botapi.text import CALLBACK_DATA_LIMIT, CAPTION_LIMIT, MESSAGE_LIMIT, visible_text
from bot.sandbox.botapi.updates import NOT_SENT_BY_DEFAULT
from bot.sandbox.botapi.webhook import SECRET_HEADER, DeliveryRecord, WebhookRetry

__all__ = [
    "BLOCKED_DESCRIPTION",
    "CALLBACK_DATA_LIMIT",
    "CAPTION_LIMIT",
    "DEFAULT_TOKEN",
    "DEFAULT_USERNAME",
    "MAX_UPLOAD_BYTES",
    "MESSAGE_LIMIT",
    "NOT_SENT_BY_DEFAULT",
    "SECRET_HEADER",
    "SEND_METHODS",
    "BotAPIControl",
    "BotAPIControlError",
    "BotAPIError",
    "BotAPIWaitTimeout",
    "CallbackRecord",
    "ChatState",
    "ControlError",
    "DeliveryRecord",
    "FakeBotAPI",
    "Fault",
    "FaultKind",
    "FaultMix",
    "RateLimits",
    "RequestRecord",
    "SentMessage",
    "StoredFile",
    "WebhookRetry",
    "main",
    "visible_text",
]
