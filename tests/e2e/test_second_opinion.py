"""The optional LLM second opinion, with the real bot process and a local OpenAI-compatible stub:
it can raise a level after the fact, and when it hangs the crisis reply does not wait for it."""

from __future__ import annotations

import time

import pytest

from bot.sandbox.botapi import BotAPIControl
from tests.support.e2e import BotProcess, enroll_participant, enroll_staff
from tests.support.openai_stub import OpenAIStub

pytestmark = pytest.mark.e2e


async def test_second_opinion_raises_but_never_delays(own_bot: BotProcess, control: BotAPIControl) -> None:
    stub = OpenAIStub()
    async with stub as base_url:
        own_bot.extra_config = f"""
            [llm]
            enabled = true
            base_url = "{base_url}"
            mode = "moderation"
            model = "omni-moderation-latest"
            timeout_seconds = 2.0
        """
        own_bot.start()
        await own_bot.wait_ready(control)
        clinician = await enroll_staff(own_bot, control, "dr-llm")
        sam = await enroll_participant(own_bot, control, "P-llm", "dr-llm")

        # 1. The rules see nothing; the moderation endpoint sees self-harm intent: raised to urgent.
        stub.moderation(flags=["self-harm/intent"], scores={"self-harm/intent": 0.91})
        await sam.say("I made pasta and watched the rain")  # the stub, not the rules, decides here
        first = await sam.read_text()
        crisis = first if "988" in first else await sam.read_text()
        assert "988" in crisis
        alert = await clinician.wait_for_message("Safety alert: URGENT")
        assert "P-llm" in alert["visible_text"]

        # 2. The endpoint hangs: a message the rules flag gets its crisis reply at once anyway.
        stub.hang(30)
        started = time.monotonic()
        await sam.say("i want to kill myself")
        reply = await sam.read_text()
        assert "988" in reply
        assert time.monotonic() - started < 2.0, "the crisis reply waited for the LLM"
