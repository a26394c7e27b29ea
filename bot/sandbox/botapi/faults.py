"""What stands between a Bot API call and its answer: scripted faults (429 with retry_after, 403,
5xx, slow answers), a seeded random mix of them, users who blocked the bot, and Telegram's flood
limits (about 30 messages/s overall and about 1/s per chat, as token buckets), including the
longer ban of a client that sends again before the retry_after it was given."""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal, get_args

from bot.sandbox.botapi.calls import RequestRecord
from bot.sandbox.botapi.errors import BotAPIError, ControlError, too_many_requests
from bot.telegram.ratelimit import TokenBucket

# The methods Telegram counts as "messages" for its flood limits (lower-cased, as looked up).
SEND_METHODS: Final = frozenset({"sendmessage", "senddocument", "sendphoto"})

BLOCKED_DESCRIPTION: Final = "Forbidden: bot was blocked by the user"


@dataclass(frozen=True)
class RateLimits:
    """Telegram's flood limits as token buckets: `burst` sends at once, refilled at `per_second`."""

    enabled: bool = True
    global_per_second: float = 30.0
    global_burst: float = 30.0
    per_chat_per_second: float = 1.0
    per_chat_burst: float = 3.0
    # A group (a negative chat id): at most this many messages in any 60 seconds, on top of the
    # per-chat bucket (Telegram: about 20 a minute in one group).
    per_group_per_minute: int = 20
    # A send to a chat before the retry_after it was given has passed gets 429 again (Telegram
    # lengthens the ban of such clients); independent of `enabled`, so scripted 429s honour it too.
    enforce_retry_after: bool = True

    def __post_init__(self) -> None:
        # The buckets need a positive rate and room for one send (TokenBucket checks it too, but
        # only when a send first meets them); said here, a bad PUT /_control/rate_limits is a 400.
        rates, bursts = (self.global_per_second, self.per_chat_per_second), (self.global_burst, self.per_chat_burst)
        if min(rates) <= 0 or min(bursts) < 1:
            raise ControlError("rate limits need per_second > 0 and burst >= 1")
        if self.per_group_per_minute < 1:
            raise ControlError("rate limits need per_group_per_minute >= 1")


FaultKind = Literal["retry_after", "forbidden", "server_error", "slow"]


@dataclass
class Fault:
    """A scripted fault: applied to the next `times` calls of `method` ("*" = any), for `chat_id`
    if given. "slow" waits `delay` seconds and then answers normally."""

    method: str
    kind: FaultKind
    chat_id: int | None = None
    times: int = 1
    retry_after: int = 1
    status: int = 500
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ControlError(f"fault kind must be one of {get_args(FaultKind)}, not {self.kind!r}")
        if self.times < 1 or self.retry_after < 1 or self.delay < 0 or not 500 <= self.status <= 599:
            raise ControlError("fault needs times >= 1, retry_after >= 1, delay >= 0, 500 <= status <= 599")

    def matches(self, method: str, chat_id: int | None) -> bool:
        method_matches = self.method == "*" or self.method.lower() == method.lower()
        return method_matches and self.chat_id in (None, chat_id)


@dataclass(frozen=True)
class FaultMix:
    """Random faults on a share of calls, reproducible by `seed`. A "timeout" answers after
    `timeout_delay` seconds, longer than a client should wait."""

    seed: int = 0
    retry_after_percent: float = 0.0
    server_error_percent: float = 0.0
    timeout_percent: float = 0.0
    retry_after: int = 1
    timeout_delay: float = 5.0
    methods: tuple[str, ...] = ("sendMessage", "sendDocument", "sendPhoto")

    def __post_init__(self) -> None:
        total = self.retry_after_percent + self.server_error_percent + self.timeout_percent
        if not 0 <= total <= 100 or self.retry_after < 1:
            raise ControlError("fault mix percentages must add up to 0..100 and retry_after be >= 1")
        object.__setattr__(self, "methods", tuple(self.methods))


class _Allowance(TokenBucket):
    """The bot's token bucket, used to judge instead of to wait.

    The sender's `TokenBucket` makes a caller wait for a token; Telegram never waits, it answers
    429 with how long to wait. So the server asks how long until a token is free without taking
    one, refuses the call if that is not now, and takes the token only once the call has been
    delivered (a call refused for another reason costs nothing), as this server always did. The
    refill arithmetic is TokenBucket's; the server's `monotonic` is its clock, so tests can move it.
    """

    def seconds_until_token(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def charge(self) -> None:
        """Take the token of a delivered call (it was free when the call was screened)."""
        self._tokens -= 1


class _Window:
    """At most `limit` delivered sends in any `seconds`: a sliding window (Telegram's group limit is
    per minute, and a token bucket would let a full burst plus a minute's refill through)."""

    def __init__(self, limit: int, seconds: float, *, monotonic: Callable[[], float]) -> None:
        self.limit, self.seconds, self._monotonic = limit, seconds, monotonic
        self._sent: list[float] = []

    def seconds_until_token(self) -> float:
        now = self._monotonic()
        self._sent = [t for t in self._sent if t > now - self.seconds]
        return 0.0 if len(self._sent) < self.limit else self._sent[-self.limit] + self.seconds - now

    def charge(self) -> None:
        self._sent.append(self._monotonic())


class Gate:
    """Screens each call before it does anything: scripted faults first, then a blocked user, then
    the random mix, then the flood limits of send methods. `sleep` is the server's (it ends early
    at shutdown); rate limits and retry_after follow `monotonic`."""

    def __init__(
        self,
        limits: RateLimits,
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._default_limits = limits
        self._monotonic = monotonic
        self._sleep = sleep
        self.clear()

    def clear(self) -> None:
        """Forget faults, blocks, limits set since start, buckets, bans and counts."""
        self.faults: list[Fault] = []
        self.mix: FaultMix | None = None
        self._mix_random = random.Random(0)  # noqa: S311 - reproducible faults, not secrets
        self.blocked: set[int] = set()
        self.limits = self._default_limits
        self._global_bucket: _Allowance | None = None
        self._chat_buckets: dict[int, _Allowance] = {}
        self._group_windows: dict[int, _Window] = {}
        self._banned_until: dict[int, float] = {}
        self.too_many_requests = 0
        self.early_retries = 0

    def set_fault_mix(self, mix: FaultMix | None) -> None:
        self.mix = mix
        self._mix_random = random.Random(mix.seed if mix else 0)  # noqa: S311

    def set_rate_limits(self, limits: RateLimits) -> None:
        self.limits = limits
        self._global_bucket = None  # refilled full under the new numbers
        self._chat_buckets.clear()
        self._group_windows.clear()

    async def screen(self, record: RequestRecord) -> list[_Allowance | _Window]:
        """Faults, blocked users and rate limits, applied before a call does anything. Returns the
        rate-limit buckets to charge if the call succeeds."""
        method, chat_id = record.method, record.chat_id
        limited = method.lower() in SEND_METHODS and chat_id is not None
        if limited and chat_id is not None:
            record.early_retry = self._banned_until.get(chat_id, -math.inf) > record.at
            self.early_retries += record.early_retry
        fault = next((f for f in self.faults if f.matches(method, chat_id)), None)
        if fault is not None:
            fault.times -= 1
            if fault.times == 0:
                self.faults.remove(fault)
            record.fault = fault.kind
            _raise_fault(fault.kind, fault.retry_after, fault.status)
            await self._sleep(fault.delay)
        if chat_id is not None and chat_id in self.blocked:
            raise BotAPIError(403, BLOCKED_DESCRIPTION, outcome="blocked")
        mix = self.mix
        if mix is not None and method.lower() in (m.lower() for m in mix.methods):
            roll = self._mix_random.random() * 100
            if roll < mix.retry_after_percent + mix.server_error_percent + mix.timeout_percent:
                kind: FaultKind = (
                    "retry_after" if roll < mix.retry_after_percent
                    else "server_error" if roll < mix.retry_after_percent + mix.server_error_percent
                    else "slow"
                )  # fmt: skip
                record.fault = "timeout" if kind == "slow" else kind
                _raise_fault(kind, mix.retry_after, self._mix_random.choice((500, 502)))
                await self._sleep(mix.timeout_delay)
        if limited and chat_id is not None:
            return self._check_rate(chat_id)
        return []

    def _check_rate(self, chat_id: int) -> list[_Allowance | _Window]:
        limits, now = self.limits, self._monotonic()
        ban_left = self._banned_until.get(chat_id, -math.inf) - now
        if limits.enforce_retry_after and ban_left > 0:
            raise too_many_requests(max(1, math.ceil(ban_left)), outcome="rate_limited")
        if not limits.enabled:
            return []
        if self._global_bucket is None:
            self._global_bucket = _Allowance(
                limits.global_per_second, limits.global_burst, monotonic=self._monotonic
            )
        chat_bucket = self._chat_buckets.get(chat_id)
        if chat_bucket is None:
            chat_bucket = self._chat_buckets[chat_id] = _Allowance(
                limits.per_chat_per_second, limits.per_chat_burst, monotonic=self._monotonic
            )
        charged: list[_Allowance | _Window] = [self._global_bucket, chat_bucket]
        if chat_id < 0:  # a group
            window = self._group_windows.get(chat_id)
            if window is None:
                window = self._group_windows[chat_id] = _Window(limits.per_group_per_minute, 60.0,
                                                                monotonic=self._monotonic)
            charged.append(window)
        wait = max(bucket.seconds_until_token() for bucket in charged)
        if wait > 0:
            raise too_many_requests(max(1, math.ceil(wait)), outcome="rate_limited")
        return charged

    def note_refusal(self, record: RequestRecord, error: BotAPIError) -> None:
        """A call answered with an error: a retry_after bans the chat's sends until it has passed."""
        if error.retry_after is None:
            return
        self.too_many_requests += 1
        if record.chat_id is not None and record.method.lower() in SEND_METHODS:
            until = self._monotonic() + error.retry_after
            self._banned_until[record.chat_id] = max(self._banned_until.get(record.chat_id, until), until)


def _raise_fault(kind: FaultKind, retry_after: int, status: int) -> None:
    if kind == "retry_after":
        raise too_many_requests(retry_after, outcome="fault")
    if kind == "forbidden":
        raise BotAPIError(403, BLOCKED_DESCRIPTION, outcome="fault")
    if kind == "server_error":
        reason = {500: "Internal Server Error", 502: "Bad Gateway"}.get(status, "Server Error")
        raise BotAPIError(status, reason, outcome="fault")
