"""The semantic layer: the encoder computes what the published model computes, the committed model
is the one the banks train, and by meaning it catches wordings no rule lists while a denial, past
talk or someone else's words stay quiet. The sentences below were written for this test and are in
no bank (a test checks that)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from bot.safety.encoder import SentenceEncoder, shared_encoder
from bot.safety.levels import Level
from bot.safety.rules import SafetyRules
from bot.safety.semantic import (
    TRAINING_BANKS,
    SemanticLayer,
    SemanticModel,
    SemanticSecondOpinion,
    bank_digest,
    train,
    training_rows,
)

BANKS = Path(__file__).parent / "bank"
REFERENCE = Path(__file__).parent / "fixtures" / "minilm_reference.json"

# Risk in words the phrase rules do not list (each: what a clinician must hear about).
UNLISTED_RISK = [
    ("my brother can have my guitar and my truck, i already signed the title over", "preparatory"),
    ("everything would be quieter if i just wasn't around anymore", "passive ideation"),
    ("drove out to the quarry tonight, i keep looking at the edge", "plan"),
]
QUIET = [
    "i'm not going to hurt myself, i promise, i just had a rough day",  # a denial
    "it's been three years since i tried to end it, and today i ran my first 10k",  # recovery talk
    "my sister keeps saying she wants to die and i don't know what to do",  # someone else (the rules say concern)
    "made lasagna tonight and the kids loved it",
    "had a craving at the party but i called my sponsor and left",
    "just a note for later",  # near "a note" in meaning; alone, a middling score changes nothing
]


@pytest.fixture(scope="module")
def layer(rules: SafetyRules) -> SemanticLayer:
    return SemanticLayer.load(rules)


def test_the_encoder_reproduces_the_published_model() -> None:
    """Same vectors as sentence-transformers with PyTorch (fixture made once with both installed)."""
    reference = json.loads(REFERENCE.read_text())
    vectors = shared_encoder().encode_many(reference["texts"])
    expected = np.asarray(reference["vectors"], dtype=np.float32)
    cosines = (vectors * expected).sum(axis=1)
    assert cosines.min() > 0.9999, cosines
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # One text alone and inside a padded batch of longer ones: the same vector (padding is masked).
    alone = shared_encoder().encode(reference["texts"][3])
    assert float(alone @ vectors[3]) > 0.99999


def test_the_committed_model_was_trained_on_the_banks_as_they_are() -> None:
    """Change a dev bank without retraining and this fails: run `iopbot safety train-semantic`."""
    model = SemanticModel.load()
    assert set(model.trained_on) == set(TRAINING_BANKS) and not any("holdout" in b for b in model.trained_on)
    for name in TRAINING_BANKS:
        assert model.trained_on[name] == bank_digest(BANKS / name), f"{name} changed since the model was trained"
    assert len(model.examples) == sum(int(str(model.trained_on[b]["rows"])) for b in TRAINING_BANKS)


def test_training_again_gives_the_committed_model() -> None:
    """The committed model is what `iopbot safety train-semantic` makes of the banks as they are:
    the labels are the rows', the stored vectors are the encoder's (a fixed sample of the rows
    encoded again: the whole bank takes half a minute, and the banks' digests are checked above),
    and training on those vectors gives the committed weights."""
    rows = training_rows(BANKS)
    committed = SemanticModel.load()
    assert committed.pages.tolist() == [1.0 if row["level"] in ("urgent", "imminent") else 0.0 for row in rows]
    assert committed.constructs == [str(row.get("construct") or "") for row in rows]
    sample = list(range(0, len(rows), max(1, len(rows) // 120)))
    fresh = shared_encoder().encode_many([str(rows[i]["text"]) for i in sample])
    assert np.allclose(fresh, committed.examples[sample], atol=2e-3)  # float16 as stored
    again = train(rows, committed.examples, BANKS)
    probe = shared_encoder().encode_many([text for text, _ in UNLISTED_RISK] + QUIET)
    assert np.allclose(again.scores(probe)[0], committed.scores(probe)[0], atol=5e-3)


def test_test_sentences_were_not_learned_from() -> None:
    texts = {str(row["text"]).strip().lower() for row in training_rows(BANKS)}
    for text in [t for t, _ in UNLISTED_RISK] + QUIET:
        assert text.lower() not in texts, "a sentence the model learned from proves nothing here"


@pytest.mark.parametrize(("text", "construct"), UNLISTED_RISK)
def test_risk_in_unlisted_words_pages(layer: SemanticLayer, rules: SafetyRules, text: str,
                                             construct: str) -> None:
    assert rules.assess(text).level < Level.URGENT  # the rules alone would page nobody
    combined = rules.assess(text).combine(layer.assess(text))
    assert combined.level >= Level.URGENT
    assert f"{construct}: by meaning" in combined.constructs  # the clinician sees what, not the words


@pytest.mark.parametrize("text", QUIET)
def test_denials_recovery_and_other_peoples_words_raise_nothing(layer: SemanticLayer, text: str) -> None:
    assert layer.assess(text).level == Level.NONE


def test_spanish_is_read_by_meaning_too(layer: SemanticLayer) -> None:
    """The model is English-trained; Spanish reaches it through shared words and the Spanish rows it
    learned from — weaker (see the README's figures), but an act or a goodbye letter still reads."""
    act = layer.assess("me tomé todas las pastillas de mi mamá hace rato", "es")
    assert act.level == Level.IMMINENT and "act: by meaning" in act.constructs
    letters = layer.assess("ya escribí las cartas para mis hijos, están en la mesa", "es")
    assert letters.level >= Level.URGENT and "preparatory: by meaning" in letters.constructs


def test_a_missing_model_file_says_what_to_run(tmp_path: Path) -> None:
    from bot.safety.semantic import ModelFileError

    with pytest.raises(ModelFileError, match="iopbot safety train-semantic"):
        SemanticModel.load(tmp_path / "semantic_model.json")


async def test_messages_arriving_together_are_assessed_in_one_batch(layer: SemanticLayer) -> None:
    """A burst costs one batched pass per 32, off the event loop; each caller gets its own answer."""
    calls: list[int] = []

    class Counting(SemanticLayer):
        def assess_many(self, texts, locales):  # type: ignore[no-untyped-def]
            calls.append(len(texts))
            return super().assess_many(texts, locales)

    opinion = SemanticSecondOpinion(Counting(layer.model, layer.encoder, layer.rules), batch=32)
    texts = [UNLISTED_RISK[0][0]] + ["see you at group, bringing snacks"] * 39
    results = await asyncio.gather(*(opinion.assess(text) for text in texts))
    assert calls and sum(calls) == 40 and len(calls) <= 3  # not one pass per message
    assert results[0] is not None and results[0].level >= Level.URGENT
    assert all(r is not None and r.level == Level.NONE for r in results[1:])


def test_a_fresh_encoder_loads_from_the_installed_model() -> None:
    encoder = SentenceEncoder()
    assert encoder.dimensions == 384


@pytest.mark.parametrize("text", ["/digest", "/help", "ok thanks", "/goal", "Sam"])
def test_commands_and_a_word_or_two_are_left_to_the_rules(layer: SemanticLayer, text: str) -> None:
    assert layer.assess(text).level == Level.NONE


def test_a_guard_in_one_sentence_does_not_silence_the_next(layer: SemanticLayer) -> None:
    text = f"my sister keeps saying she wants to die. {UNLISTED_RISK[0][0]}"
    assert layer.assess(text).level >= Level.URGENT
    assert layer.assess("i used to cut years ago. " + UNLISTED_RISK[0][0]).level >= Level.URGENT


def test_a_plan_with_a_time_is_imminent(layer: SemanticLayer) -> None:
    assert layer.assess("drove out to the quarry tonight, i keep looking at the edge").level == Level.IMMINENT


def test_a_long_preamble_does_not_drown_the_danger(layer: SemanticLayer) -> None:
    preamble = ("work was long and the bus was late again and my boss wanted the reports by five so i stayed "
                "and then the store was out of the cereal the kids like and it rained the whole way home. ") * 4
    assert layer.assess(preamble + UNLISTED_RISK[0][0]).level >= Level.URGENT


def test_held_out_rows_are_not_copies_of_what_it_learned() -> None:
    """Counts only (nobody reads held-out rows): near-copies would make held-out figures too good."""
    model = SemanticModel.load()
    for bank, allowed in (("holdout", 2), ("holdout2", 0), ("everyday", 0)):
        texts = [json.loads(line)["text"] for file in sorted((BANKS / bank).glob("*.jsonl"))
                 for line in file.read_text().splitlines() if line.strip()]
        nearest = (shared_encoder().encode_many(texts) @ model.examples.T).max(axis=1)
        assert int((nearest >= 0.95).sum()) <= allowed, bank


async def test_its_thread_yields_the_cpu_to_the_event_loop(layer: SemanticLayer) -> None:
    """Under a burst the layer falls behind (its late answers still page), not the crisis replies."""
    import os
    import sys
    import threading

    opinion = SemanticSecondOpinion(layer)
    try:
        thread_id = await asyncio.get_running_loop().run_in_executor(opinion._thread, threading.get_native_id)
        if sys.platform.startswith("linux"):
            assert os.getpriority(os.PRIO_PROCESS, thread_id) > os.getpriority(os.PRIO_PROCESS,
                                                                                threading.get_native_id())
    finally:
        await opinion.aclose()
