"""The optional LLM second opinion against a local OpenAI-compatible stub on 127.0.0.1.

It may raise a level and never lowers one; a hang, an HTTP error or an unreadable answer gives
None within the timeout, is counted, and is logged by id without the participant's words.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest

from bot.config import ConfigError, LlmSettings, Settings
from bot.safety import llm as llm_module
from bot.safety.levels import NO_RISK, Assessment, Category, Level
from bot.safety.llm import (
    SYSTEM_PROMPT,
    LlmSecondOpinion,
    LlmStats,
    ModerationThresholds,
    assessment_from_chat,
    assessment_from_moderation,
    merge,
)
from tests.support.openai_stub import OpenAIStub, moderation_body

TIMEOUT = 1.0  # long enough for a good answer on a loaded 2-core machine; hangs last 5 s
MARGIN = 0.25  # scheduling slack on a busy CI machine; the point is "not the stub's 5 s"
API_KEY = "sk-test-not-a-real-key"

Make = Callable[..., LlmSecondOpinion]


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[OpenAIStub]:
    stub = OpenAIStub()
    async with stub:
        yield stub


@pytest.fixture
def stub(server: OpenAIStub) -> OpenAIStub:
    server.reset()
    server.requests.clear()
    return server


@pytest.fixture(scope="module")
async def opinions() -> AsyncIterator[dict[LlmSettings, LlmSecondOpinion]]:
    # Building a client costs ~50 ms (TLS context); tests share one per settings, with fresh stats.
    made: dict[LlmSettings, LlmSecondOpinion] = {}
    yield made
    for opinion in made.values():
        await opinion.aclose()


@pytest.fixture
def make(stub: OpenAIStub, opinions: dict[LlmSettings, LlmSecondOpinion]) -> Make:
    def build(mode: str = "moderation", *, base_url: str | None = None) -> LlmSecondOpinion:
        model = "omni-moderation-latest" if mode == "moderation" else "gpt-4o-mini"
        settings = LlmSettings(enabled=True, base_url=base_url or stub.base_url, mode=mode, model=model,
                               timeout_seconds=TIMEOUT)
        if settings not in opinions:
            opinions[settings] = LlmSecondOpinion(settings, API_KEY)
        opinion = opinions[settings]
        opinion.stats = LlmStats()
        return opinion

    return build


async def timed(call: Awaitable[Assessment | None]) -> tuple[Assessment | None, float]:
    started = time.monotonic()
    result = await call
    return result, time.monotonic() - started


# --------------------------------------------------------------------------------------------
# Raising
# --------------------------------------------------------------------------------------------


async def test_moderation_self_harm_intent_raises_none_to_urgent(stub: OpenAIStub, make: Make) -> None:
    stub.moderation(flags={"self-harm", "self-harm/intent"},
                    scores={"self-harm": 0.81, "self-harm/intent": 0.93})
    opinion = make("moderation")

    result = await opinion.assess("i dont want to be here anymore", "en")

    assert result is not None
    assert result.level is Level.URGENT
    assert result.categories == (Category.SELF_HARM,)
    assert "llm:moderation:self-harm/intent" in result.reasons
    assert "llm:moderation:self-harm" in result.reasons
    merged = merge(NO_RISK, result)
    assert merged.level is Level.URGENT and merged.flagged
    (request,) = stub.requests
    assert request.path == "/v1/moderations"
    assert request.body == {"input": "i dont want to be here anymore", "model": "omni-moderation-latest"}
    assert request.authorization == f"Bearer {API_KEY}"


async def test_moderation_nothing_flagged_is_none(stub: OpenAIStub, make: Make) -> None:
    stub.moderation()
    result = await make("moderation").assess("see you at group on thursday", "en")
    assert result == Assessment()
    assert merge(NO_RISK, result) == NO_RISK


@pytest.mark.parametrize(
    ("flags", "scores", "level", "categories", "reason"),
    [
        # below the endpoint's own flag, our thresholds still count
        ((), {"self-harm/intent": 0.35}, Level.URGENT, (Category.SELF_HARM,), "self-harm/intent"),
        ((), {"self-harm/instructions": 0.30}, Level.URGENT, (Category.SELF_HARM,), "self-harm/instructions"),
        ((), {"self-harm/intent": 0.20}, Level.CONCERN, (Category.SELF_HARM,), "self-harm/intent"),
        ((), {"self-harm": 0.40}, Level.CONCERN, (Category.SELF_HARM,), "self-harm"),
        ((), {"self-harm": 0.55}, Level.URGENT, (Category.SELF_HARM,), "self-harm"),
        ((), {"self-harm/intent": 0.10}, Level.NONE, (), None),
        # flagged by the endpoint whatever the score
        (("self-harm",), {"self-harm": 0.05}, Level.URGENT, (Category.SELF_HARM,), "self-harm"),
        (("self-harm/instructions",), {}, Level.URGENT, (Category.SELF_HARM,), "self-harm/instructions"),
        # threats against someone
        (("violence", "harassment/threatening"), {"violence": 0.9, "harassment/threatening": 0.8},
         Level.URGENT, (Category.HARM_TO_OTHERS,), "harassment/threatening"),
        ((), {"hate/threatening": 0.6}, Level.URGENT, (Category.HARM_TO_OTHERS,), "hate/threatening"),
        # violence alone cannot tell "I will hurt him" from "he hurt me": concern, the reason says why
        (("violence",), {"violence": 0.9}, Level.CONCERN, (), "violence"),
        (("violence/graphic",), {}, Level.CONCERN, (), "violence/graphic"),
        ((), {"violence": 0.5}, Level.NONE, (), None),
        # not ours
        (("harassment", "sexual", "hate", "illicit"), {"harassment": 0.99}, Level.NONE, (), None),
    ],
)
def test_moderation_mapping(flags: tuple[str, ...], scores: dict[str, float], level: Level,
                            categories: tuple[Category, ...], reason: str | None) -> None:
    result = assessment_from_moderation(moderation_body(flags, scores))
    assert result.level is level
    assert result.categories == categories
    if reason is None:
        assert result.reasons == ()
    else:
        assert f"llm:moderation:{reason}" in result.reasons


def test_moderation_never_answers_imminent() -> None:
    everything = moderation_body(
        ["self-harm", "self-harm/intent", "self-harm/instructions", "violence", "harassment/threatening"],
        dict.fromkeys(["self-harm", "self-harm/intent", "self-harm/instructions"], 1.0),
    )
    result = assessment_from_moderation(everything)
    assert result.level is Level.URGENT
    assert result.categories == (Category.SELF_HARM, Category.HARM_TO_OTHERS)


def test_moderation_thresholds_can_be_tuned() -> None:
    body = moderation_body((), {"self-harm/intent": 0.25})
    assert assessment_from_moderation(body).level is Level.CONCERN
    stricter = ModerationThresholds(self_harm_intent_urgent=0.2)
    assert assessment_from_moderation(body, stricter).level is Level.URGENT


async def test_moderation_from_a_server_that_leaves_categories_out(stub: OpenAIStub, make: Make) -> None:
    # Compatible servers (older models, local ones) may not know illicit/* or some others.
    stub.moderation(flags={"self-harm/intent"}, omit={"illicit", "illicit/violent", "violence/graphic"})
    result = await make("moderation").assess("text", "en")
    assert result is not None and result.level is Level.URGENT


async def test_chat_json_answer_parsed(stub: OpenAIStub, make: Make) -> None:
    stub.chat_json({"level": "imminent", "categories": ["suicide", "overdose_relapse"]})
    opinion = make("chat")

    result = await opinion.assess("tengo las pastillas aquí", "es")

    assert result == Assessment(Level.IMMINENT, (Category.SUICIDE, Category.OVERDOSE_RELAPSE), ("llm:chat",))
    (request,) = stub.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["response_format"] == {"type": "json_object"}
    system, user = request.body["messages"]
    assert system["role"] == "system" and system["content"].startswith(SYSTEM_PROMPT)
    assert "Spanish" in system["content"]
    assert user == {"role": "user", "content": "tengo las pastillas aquí"}
    assert opinion.stats == LlmStats(calls=1, ok=1, raised=1)


async def test_chat_none_and_extra_keys(stub: OpenAIStub, make: Make) -> None:
    opinion = make("chat")
    stub.chat_json({"level": "none", "categories": []})
    assert await opinion.assess("what time is group", "en") == Assessment()
    # A model's own explanation is ignored, never kept.
    stub.chat_json({"level": "concern", "categories": ["self_harm"], "reason": "mentions past cutting"})
    assert await opinion.assess("i used to cut", "en") == Assessment(
        Level.CONCERN, (Category.SELF_HARM,), ("llm:chat",)
    )


@pytest.mark.parametrize(
    "content",
    [
        "not json at all",
        '```json\n{"level": "urgent", "categories": ["suicide"]}\n```',
        "[]",
        '"urgent"',
        "{}",
        '{"categories": ["suicide"]}',
        '{"level": "urgent"}',
        '{"level": "URGENT", "categories": ["suicide"]}',
        '{"level": "high", "categories": ["suicide"]}',
        '{"level": 2, "categories": ["suicide"]}',
        '{"level": "urgent", "categories": "suicide"}',
        '{"level": "urgent", "categories": ["suicidal"]}',
        '{"level": "urgent", "categories": [null]}',
        '{"level": "urgent", "categories": ["suicide"]',  # cut off
        None,  # a refusal: no content
    ],
)
def test_chat_malformed_answer_is_refused(content: str | None) -> None:
    message = {"role": "assistant", "content": content}
    body = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    with pytest.raises(llm_module.MalformedAnswer):
        assessment_from_chat(body)


async def test_chat_malformed_answer_is_ignored(stub: OpenAIStub, make: Make) -> None:
    opinion = make("chat")
    stub.chat_content('{"level": "urgent", "categories": ["suicidal"]}')
    assert await opinion.assess("text", "en") is None
    stub.chat_content(None)  # a refusal
    assert await opinion.assess("text", "en") is None
    stub.chat_content('{"level": "urgent", "categ', finish_reason="length")  # cut off
    assert await opinion.assess("text", "en") is None
    assert opinion.stats == LlmStats(calls=3, errors=3)


# --------------------------------------------------------------------------------------------
# Never lowering
# --------------------------------------------------------------------------------------------


async def test_never_lowers_rules_urgent_with_llm_none(stub: OpenAIStub, make: Make) -> None:
    rules = Assessment(Level.URGENT, (Category.SUICIDE,), ("rule:en/suicide.toml:want_to_die",))
    stub.moderation()
    llm_none = await make("moderation").assess("text", "en")
    assert llm_none is not None and llm_none.level is Level.NONE
    assert merge(rules, llm_none) == rules
    assert merge(rules, None) is rules


def test_merge_only_raises_and_keeps_both_reasons() -> None:
    rules = Assessment(Level.IMMINENT, (Category.SUICIDE,), ("rule:en/suicide.toml:tonight",))
    llm = Assessment(Level.URGENT, (Category.SELF_HARM,), ("llm:moderation:self-harm/intent",))
    merged = merge(rules, llm)
    assert merged.level is Level.IMMINENT
    assert merged.categories == (Category.SUICIDE, Category.SELF_HARM)
    assert merged.reasons == ("rule:en/suicide.toml:tonight", "llm:moderation:self-harm/intent")
    concern = Assessment(Level.CONCERN, (Category.SELF_HARM,), ("rule:en/self_harm.toml:used_to",))
    assert merge(concern, llm).level is Level.URGENT
    for level in Level:
        for other in Level:
            assert merge(Assessment(level), Assessment(other)).level == max(level, other)


# --------------------------------------------------------------------------------------------
# Failing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["moderation", "chat"])
async def test_hang_returns_none_within_timeout(stub: OpenAIStub, make: Make, mode: str) -> None:
    stub.hang(5.0)
    opinion = make(mode)
    result, elapsed = await timed(opinion.assess("text", "en"))
    assert result is None
    assert elapsed < TIMEOUT + MARGIN
    assert opinion.stats == LlmStats(calls=1, timeouts=1)


async def test_wait_for_bounds_the_call_even_if_the_client_would_wait_longer(
    stub: OpenAIStub, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Something slow outside the HTTP read (a stuck DNS lookup, a pool wait) is cut by asyncio too.
    opinion = make("moderation")

    async def stuck(text: str) -> Assessment:
        await asyncio.sleep(5)
        raise AssertionError("not reached")

    monkeypatch.setattr(opinion, "_moderation", stuck)
    result, elapsed = await timed(opinion.assess("text", "en"))
    assert result is None and elapsed < TIMEOUT + MARGIN
    assert opinion.stats.timeouts == 1


async def test_many_hanging_calls_at_once_all_end_within_timeout(stub: OpenAIStub, make: Make) -> None:
    stub.hang(5.0)
    opinion = make("moderation")
    started = time.monotonic()
    results = await asyncio.gather(*(opinion.assess(f"text {i}", "en") for i in range(20)))
    assert results == [None] * 20
    assert time.monotonic() - started < TIMEOUT + MARGIN + 0.2
    assert opinion.stats == LlmStats(calls=20, timeouts=20)


@pytest.mark.parametrize(("mode", "status"), [("moderation", 500), ("chat", 500), ("moderation", 429),
                                              ("chat", 401), ("moderation", 404)])
async def test_http_error_returns_none(stub: OpenAIStub, make: Make, mode: str, status: int) -> None:
    stub.fail(status)
    opinion = make(mode)
    assert await opinion.assess("text", "en") is None
    assert opinion.stats == LlmStats(calls=1, errors=1)
    assert len(stub.requests) == 1  # max_retries=0: no second request, no added delay


@pytest.mark.parametrize("mode", ["moderation", "chat"])
async def test_malformed_body_returns_none(stub: OpenAIStub, make: Make, mode: str) -> None:
    stub.malformed()
    opinion = make(mode)
    assert await opinion.assess("text", "en") is None
    assert opinion.stats == LlmStats(calls=1, errors=1)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"results": []},
        {"results": ["x"]},
        {"results": [{"categories": {}}]},
        {"results": [{"categories": {"self-harm": "yes"}, "category_scores": {}}]},
        {"results": [{"categories": {}, "category_scores": {"self-harm": 1.5}}]},
        {"results": [{"categories": {}, "category_scores": {"self-harm": "0.9"}}]},
        {"results": [{"categories": {}, "category_scores": {"self-harm": True}}]},
    ],
)
def test_moderation_wrong_shapes_are_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(llm_module.MalformedAnswer):
        assessment_from_moderation(body)


async def test_connection_refused_returns_none(make: Make) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    opinion = make("moderation", base_url=f"http://127.0.0.1:{port}/v1")
    result, elapsed = await timed(opinion.assess("text", "en"))
    assert result is None and elapsed < TIMEOUT + MARGIN
    assert opinion.stats == LlmStats(calls=1, errors=1)


async def test_unexpected_exception_returns_none(make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    opinion = make("moderation")

    async def broken(text: str) -> Assessment:
        raise RuntimeError(f"bug while reading {text}")

    monkeypatch.setattr(opinion, "_moderation", broken)
    assert await opinion.assess("text", "en") is None
    assert opinion.stats == LlmStats(calls=1, errors=1)


async def test_stats_counted(stub: OpenAIStub, make: Make) -> None:
    opinion = make("moderation")
    stub.moderation(flags={"self-harm/intent"})
    assert await opinion.assess("one", "en") is not None
    stub.moderation()
    assert await opinion.assess("two", "en") is not None
    stub.hang(5.0)
    assert await opinion.assess("three", "en") is None
    stub.fail(500)
    assert await opinion.assess("four", "en") is None
    stub.malformed()
    assert await opinion.assess("five", "en") is None
    assert opinion.stats == LlmStats(calls=5, ok=2, timeouts=1, errors=2, raised=1)
    assert opinion.stats.as_dict() == {"calls": 5, "ok": 2, "timeouts": 1, "errors": 2, "raised": 1}


# --------------------------------------------------------------------------------------------
# Privacy: the participant's words never reach a log line
# --------------------------------------------------------------------------------------------


async def test_assessed_text_never_appears_in_logs(
    stub: OpenAIStub, make: Make, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "Quillfeather-7781 I have the pills and tonight is the night"  # noqa: S105 - not a password
    caplog.set_level(logging.DEBUG)  # every logger, the openai and HTTP clients' included
    moderation, chat = make("moderation"), make("chat")

    stub.moderation(flags={"self-harm/intent"})
    await moderation.assess(secret, "en", ref=9001)
    stub.chat_json({"level": "imminent", "categories": ["suicide"]})
    await chat.assess(secret, "en", ref=9001)
    stub.chat_content(f"I cannot classify: {secret}")  # a model quoting the input, not JSON
    await chat.assess(secret, "en", ref=9001)
    stub.fail(500, echo_input=True)  # an error body that quotes the request
    await moderation.assess(secret, "en", ref=9001)
    await chat.assess(secret, "en", ref=9001)
    stub.malformed()
    await moderation.assess(secret, "en", ref=9001)
    stub.hang(5.0)
    await chat.assess(secret, "en", ref=9001)

    async def broken(text: str) -> Assessment:
        raise RuntimeError(f"bug while reading {text}")

    monkeypatch.setattr(moderation, "_moderation", broken)
    await moderation.assess(secret, "en", ref=9001)

    assert moderation.stats.calls + chat.stats.calls == 8
    ours = [r for r in caplog.records if r.name == "bot.safety.llm"]
    assert sum(r.levelno >= logging.WARNING for r in ours) == 6  # every failure is logged...
    assert all("llm-" in r.getMessage() and "ref=9001" in r.getMessage() for r in ours)  # ...by id
    for needle in ("Quillfeather", "pills", "tonight"):
        assert needle not in caplog.text
        for record in caplog.records:
            assert needle not in record.getMessage()
            assert needle not in str(record.exc_info or "")


# --------------------------------------------------------------------------------------------
# Construction and the stub itself
# --------------------------------------------------------------------------------------------


def test_disabled_gives_no_second_opinion() -> None:
    assert LlmSecondOpinion.from_settings(Settings()) is None


async def test_enabled_from_settings(stub: OpenAIStub) -> None:
    settings = Settings(llm=LlmSettings(enabled=True, base_url=stub.base_url, timeout_seconds=TIMEOUT))
    opinion = LlmSecondOpinion.from_settings(settings)
    assert opinion is not None
    async with opinion:
        stub.moderation(flags={"self-harm"})
        result = await opinion.assess("text", "en")
    assert result is not None and result.level is Level.URGENT
    assert stub.requests[-1].authorization == "Bearer not-needed"  # a local server without keys


def test_openai_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        LlmSecondOpinion(LlmSettings(enabled=True), "")


def test_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mode"):
        LlmSecondOpinion(LlmSettings(enabled=True, mode="vibes", base_url="http://127.0.0.1:9/v1"), "k")


def test_chat_mode_with_the_moderation_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="chat model"):
        LlmSecondOpinion(LlmSettings(enabled=True, mode="chat", base_url="http://127.0.0.1:9/v1"), "k")


async def test_stub_answers_parse_with_the_openai_client(stub: OpenAIStub) -> None:
    client = openai.AsyncOpenAI(base_url=stub.base_url, api_key=API_KEY, max_retries=0, timeout=2)
    try:
        stub.moderation(flags={"self-harm/intent"}, scores={"self-harm/intent": 0.9})
        moderation = await client.moderations.create(input="x", model="omni-moderation-latest")
        assert moderation.results[0].categories.self_harm_intent is True
        assert moderation.results[0].category_scores.self_harm_intent == 0.9
        assert moderation.results[0].flagged is True
        stub.chat_json({"level": "none", "categories": []})
        chat = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_object"},
        )
        assert chat.choices[0].message.content == '{"level": "none", "categories": []}'
        assert chat.choices[0].finish_reason == "stop"
        stub.fail(500)
        with pytest.raises(openai.InternalServerError):
            await client.moderations.create(input="x")
    finally:
        await client.close()
