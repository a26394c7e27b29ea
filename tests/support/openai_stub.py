"""A local OpenAI-compatible server for tests: /v1/moderations and /v1/chat/completions on 127.0.0.1.

Answers have the shapes the `openai` client parses. Each test programs it:

    stub = OpenAIStub()
    async with stub as base_url:               # "http://127.0.0.1:<port>/v1", also stub.base_url
        stub.moderation(flags={"self-harm/intent"}, scores={"self-harm/intent": 0.93})
        stub.chat_json({"level": "urgent", "categories": ["suicide"]})
        stub.chat_content("not json")          # a model that ignored the JSON instruction
        stub.hang(5.0)                         # answer only after 5 s (or when the stub stops)
        stub.fail(500)                         # an OpenAI-style error body with that status
        stub.malformed()                       # 200, application/json, but a cut-off body
        stub.requests                          # what was asked: path, JSON body, Authorization

A behaviour stays until the next one is set; `reset()` goes back to "nothing flagged".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)  # fmt: skip


def moderation_body(
    flags: Iterable[str] = (),
    scores: Mapping[str, float] | None = None,
    *,
    omit: Iterable[str] = (),
    model: str = "omni-moderation-latest",
    response_id: str = "modr-0",
) -> dict[str, Any]:
    """A moderations response body as OpenAI sends it for one text input."""
    flagged, scored, omitted = frozenset(flags), dict(scores or {}), frozenset(omit)
    unknown = (flagged | set(scored) | omitted) - set(MODERATION_CATEGORIES)
    assert not unknown, f"not moderation categories: {sorted(unknown)}"
    present = [name for name in MODERATION_CATEGORIES if name not in omitted]
    result = {
        "flagged": bool(flagged),
        "categories": {name: name in flagged for name in present},
        "category_scores": {name: scored.get(name, 0.0001) for name in present},
        "category_applied_input_types": {name: ["text"] for name in present},
    }
    return {"id": response_id, "model": model, "results": [result]}


@dataclass(frozen=True)
class StubRequest:
    path: str
    body: Any
    authorization: str | None
    received_at: float


@dataclass
class _Behaviour:
    kind: str = "answer"  # answer | hang | fail | malformed
    seconds: float = 0.0
    status: int = 500
    flags: frozenset[str] = frozenset()
    scores: Mapping[str, float] = field(default_factory=dict)
    omit: frozenset[str] = frozenset()
    echo_input: bool = False
    chat_content: str | None = '{"level": "none", "categories": []}'
    finish_reason: str = "stop"


class OpenAIStub:
    def __init__(self) -> None:
        self.requests: list[StubRequest] = []
        self._behaviour = _Behaviour()
        self._ids = itertools.count(1)
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- programming ------------------------------------------------------------------------

    def reset(self) -> None:
        self._behaviour = _Behaviour()

    def moderation(
        self,
        flags: Iterable[str] = (),
        scores: Mapping[str, float] | None = None,
        *,
        omit: Iterable[str] = (),
    ) -> None:
        """Moderation answers: `flags` are the categories flagged true; `scores` default to 0.0001.

        `omit` leaves categories out of the answer, like some compatible servers do.
        """
        moderation_body(flags, scores, omit=omit)  # checks the names
        self._behaviour = _Behaviour(flags=frozenset(flags), scores=dict(scores or {}), omit=frozenset(omit))

    def chat_content(self, content: str | None, *, finish_reason: str = "stop") -> None:
        """Chat answers carry exactly this message content (None: a refusal with no content)."""
        self._behaviour = _Behaviour(chat_content=content, finish_reason=finish_reason)

    def chat_json(self, answer: Any) -> None:
        self.chat_content(json.dumps(answer))

    def hang(self, seconds: float) -> None:
        self._behaviour = _Behaviour(kind="hang", seconds=seconds)

    def fail(self, status: int = 500, *, echo_input: bool = False) -> None:
        """Answer with an OpenAI-style error; `echo_input` quotes the request in the error message,
        as some compatible servers do (so a test can check that error messages are not logged)."""
        self._behaviour = _Behaviour(kind="fail", status=status, echo_input=echo_input)

    def malformed(self) -> None:
        self._behaviour = _Behaviour(kind="malformed")

    # -- serving ----------------------------------------------------------------------------

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/moderations", self._moderations)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def __aexit__(self, *_: object) -> None:
        self._stopping.set()  # hanging handlers return at once
        if self._runner is not None:
            await self._runner.cleanup()

    async def _common(self, request: web.Request) -> tuple[dict[str, Any], _Behaviour, web.Response | None]:
        """Record the request and play the behaviour; a response here ends the request."""
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        auth = request.headers.get("Authorization")
        self.requests.append(StubRequest(request.path, body, auth, time.monotonic()))
        body = body if isinstance(body, dict) else {}
        behaviour = self._behaviour
        if behaviour.kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=behaviour.seconds)
        elif behaviour.kind == "fail":
            text = "The server had an error while processing your request."
            if behaviour.echo_input:
                text += f" Request was: {json.dumps(body)}"
            error = {"message": text, "type": "server_error", "param": None, "code": None}
            return body, behaviour, web.json_response({"error": error}, status=behaviour.status)
        elif behaviour.kind == "malformed":
            cut_off = '{"id": "x-cut", "results": [{"flagged": tr'
            cut = web.Response(text=cut_off, content_type="application/json")
            return body, behaviour, cut
        return body, behaviour, None

    async def _moderations(self, request: web.Request) -> web.Response:
        body, b, early = await self._common(request)
        if early is not None:
            return early
        return web.json_response(moderation_body(
            b.flags, b.scores, omit=b.omit, model=body.get("model") or "omni-moderation-latest",
            response_id=f"modr-{next(self._ids)}",
        ))

    async def _chat(self, request: web.Request) -> web.Response:
        body, b, early = await self._common(request)
        if early is not None:
            return early
        message: dict[str, Any] = {"role": "assistant", "content": b.chat_content, "refusal": None,
                                   "annotations": []}
        if b.chat_content is None:
            message["refusal"] = "I can't help with that."
        return web.json_response({
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "gpt-4o-mini",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": b.finish_reason}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132},
            "system_fingerprint": "fp_stub",
        })
