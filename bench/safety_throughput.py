"""Throughput of the rules layer of distress detection, on one core (CPU time of this process).

    python bench/safety_throughput.py

Prints how long the rules take to load and how many short messages per second `assess` handles.
The messages are written for this benchmark: mostly everyday check-in chatter, with a share of
distress, idioms, negations, Spanish and disguised spellings, like a real program's traffic.
Importable: `run()` returns the figures as a dict.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT))

from bot.safety.rules import SafetyRules  # noqa: E402

BENIGN = [
    "Running 5 minutes late to group, sorry!",
    "What time is the session on Thursday?",
    "I went for a walk today and it helped a bit",
    "Can you send me the link again?",
    "Had a good talk with my sponsor last night",
    "thanks, see you tomorrow",
    "I slept badly but I'm ok",
    "Made it to my AA meeting 🙌",
    "my mood is a 6 today",
    "This traffic is killing me lol",
    "I could murder a pizza right now",
    "dying to see my kids this weekend",
    "we killed it at the gym this morning",
    "Is group still on for 3pm?",
    "feeling a bit anxious about work but managing",
    "I used the breathing exercise and it worked",
    "ok",
    "👍",
    "Mi cita es el martes a las 10",
    "gracias por todo, nos vemos mañana",
    "I don't want to die, I want to get better",
    "i would never hurt myself, just venting",
    "the character in the movie wanted to die, so sad",
    "can I reschedule my 1:1?",
    "Went to the pharmacy to pick up my meds",
    "cravings were low today, 30 days sober!",
]
RISKY = [
    "i just want to die",
    "I dont wanna be here anymore",
    "k i l l  m y s e l f",
    "I have the pills here and I'm done",
    "everyone would be better off without me",
    "i relapsed last night and i feel like shit",
    "me quiero morir",
    "I used to cut, 200 days clean",
    "my brother said he wants to kill himself",
    "I feel so hopeless",
]


def messages(count: int, risky_share: float = 0.15) -> list[str]:
    """`count` messages, about `risky_share` of them risky, in a fixed interleaved order."""
    every = max(1, round(1 / risky_share)) if risky_share > 0 else count + 1
    benign, risky = itertools.cycle(BENIGN), itertools.cycle(RISKY)
    return [next(risky) if i % every == 0 else next(benign) for i in range(count)]


def reference_loop_ns(iterations: int = 2_000_000) -> float:
    """CPU time of one iteration of a trivial Python loop, in ns: how fast this machine is right now.

    About 30 ns on a current laptop; a busy shared machine can be several times slower, and every
    figure of this benchmark with it.
    """
    started = time.process_time()
    total = 0
    for number in range(iterations):
        total += number
    return (time.process_time() - started) / iterations * 1e9


def run(count: int = 50_000, content_dir: Path | None = None) -> dict[str, float]:
    """Load the rules and assess `count` short messages; return the figures."""
    started = time.process_time()
    rules = SafetyRules.load(content_dir or ROOT / "content")
    load_seconds = time.process_time() - started
    batch = messages(count)
    for text in batch[:500]:  # warm up caches
        rules.assess(text, "en")
    started = time.process_time()
    flagged = 0
    for text in batch:
        if rules.assess(text, "en").flagged:
            flagged += 1
    seconds = time.process_time() - started
    started = time.process_time()
    for text in batch[: count // 5]:
        rules.assess(text, "es")
    seconds_es = time.process_time() - started
    return {
        "rules_load_seconds": round(load_seconds, 3),
        "messages": count,
        "flagged": flagged,
        "messages_per_second": round(count / seconds),
        "microseconds_per_message": round(seconds / count * 1e6, 1),
        "messages_per_second_es": round((count // 5) / seconds_es),
        "reference_loop_ns": round(reference_loop_ns(), 1),
    }


def run_semantic(count: int = 640, content_dir: Path | None = None) -> dict[str, float]:
    """The semantic layer (bot/safety/semantic.py): model load time, and messages per second when
    each message is encoded alone (a quiet program) and in batches of 32 (a burst), on one thread."""
    import os

    from bot.safety.encoder import SentenceEncoder
    from bot.safety.semantic import SemanticLayer, SemanticModel

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    rules = SafetyRules.load(content_dir or ROOT / "content")
    started = time.perf_counter()
    layer = SemanticLayer(SemanticModel.load(), SentenceEncoder(), rules)
    load_seconds = time.perf_counter() - started
    batch = messages(count)
    layer.assess_many(batch[:32], ["en"] * 32)  # warm up
    started, cpu = time.perf_counter(), time.process_time()
    for text in batch[: count // 4]:
        layer.assess(text, "en")
    alone, alone_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    for first in range(0, count, 32):
        layer.assess_many(batch[first : first + 32], ["en"] * len(batch[first : first + 32]))
    batched, batched_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "semantic_load_seconds": round(load_seconds, 2),
        "semantic_alone_per_second": round((count // 4) / alone),
        "semantic_alone_ms": round(alone / (count // 4) * 1000, 2),
        "semantic_alone_cpu_ms": round(alone_cpu / (count // 4) * 1000, 2),
        "semantic_batched_per_second": round(count / batched),
        "semantic_batched_ms": round(batched / count * 1000, 2),
        "semantic_batched_cpu_ms": round(batched_cpu / count * 1000, 2),
    }


def main() -> None:
    figures = run() | run_semantic()
    print(f"rules load time:        {figures['rules_load_seconds']:.3f} s")
    print(
        f"assess (en):            {figures['messages_per_second']:,.0f} messages/s "
        f"({figures['microseconds_per_message']} µs each, {figures['flagged']:,} of "
        f"{figures['messages']:,} flagged)"
    )
    print(f"assess (es, + English): {figures['messages_per_second_es']:,.0f} messages/s")
    print(f"semantic layer load:    {figures['semantic_load_seconds']:.2f} s")
    print(f"semantic, one at a time: {figures['semantic_alone_per_second']:,.0f} messages/s "
          f"({figures['semantic_alone_ms']} ms each, {figures['semantic_alone_cpu_ms']} ms CPU)")
    print(f"semantic, batches of 32: {figures['semantic_batched_per_second']:,.0f} messages/s "
          f"({figures['semantic_batched_ms']} ms each, {figures['semantic_batched_cpu_ms']} ms CPU)")
    print(f"machine speed:          {figures['reference_loop_ns']} ns per trivial loop step (a current laptop: ~30)")


if __name__ == "__main__":
    main()
