"""The ordering stage's model: the specifics feature, the weights file, the salience prior."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memos.domain.models import MessageInput
from memos.embedders.minilm import MODEL_NAME
from memos.search.ordering import DATA_FILE, FEATURES, load_ordering, speaker, specifics
from memos.service import MemoryService

pytestmark = pytest.mark.timeout(180)


def n(value: float) -> int:
    return round(float(np.expm1(value)))


def test_specifics_counts_names_and_numbers_in_the_memorys_own_words() -> None:
    assert n(specifics("Jon: I went to Rome with Gina in 2022 and saw 3 shows.")) == 4
    # sentence-initial words, "I" and "I'm" are not names
    assert n(specifics("Great news. I'm happy! Thanks a lot. I agree.")) == 0
    # the Name: prefix and the pool's speakers are not specifics
    assert (
        n(specifics("Melanie: Thanks, Caroline! See you in Paris.", frozenset({"Caroline"}))) == 1
    )
    # the speaker prefix is not a name the memory states
    assert n(specifics("Tim: Look at this bridge!")) == 0
    # scripts without case count numbers only
    assert n(specifics("我在2023年搬到了杭州")) == 1
    assert specifics("") == 0.0


def test_speaker_reads_the_chat_prefix_only() -> None:
    assert speaker("Melanie: hi there") == "Melanie"
    assert speaker("Mary Ann: hi") == "Mary Ann"
    assert speaker("no prefix here") is None
    assert speaker("see https://example.com for more") is None


def test_weights_file_records_its_provenance_and_scale() -> None:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert data["features"] == list(FEATURES)
    assert data["fitted_by"].startswith("bench/feature_cv.py")
    held_out = data["held_out_recall_200_500_1000"]
    assert held_out["salience"][1] > held_out["fused_only"][1]
    for model in (data["plain"], *data["embedders"].values()):
        assert len(model["weights"]) == len(FEATURES)
        assert sum(abs(w) for w in model["weights"]) == pytest.approx(10.0, abs=1e-2)


def test_salience_applies_only_to_the_embedder_it_was_fitted_for() -> None:
    fitted = load_ordering(MODEL_NAME, 384)
    assert fitted.salience is not None and fitted.salience.shape == (384,)
    plain = load_ordering(MODEL_NAME, 384, salience=False)
    assert plain.salience is None
    assert load_ordering("openai:text-embedding-3-small", 1536).salience is None
    assert load_ordering(MODEL_NAME, 768).salience is None  # same name, other dimension
    assert load_ordering("hash-64", 64).weights == plain.weights
    row = (1.0, 0.0, 1.0, 0.5, 0.7)
    vec = np.ones(384, np.float32) / np.sqrt(384)
    assert fitted.score(row, vec) == pytest.approx(
        sum(w * x for w, x in zip(fitted.weights, row, strict=True)) + float(vec @ fitted.salience)
    )
    assert plain.score(row, vec) == pytest.approx(
        sum(w * x for w, x in zip(plain.weights, row, strict=True))
    )


CHATTER = [
    "Same here!",
    "That's so cool, thanks for sharing.",
    "Haha, totally agree with you.",
    "Wow, that sounds amazing!",
    "I'm glad to hear that, take care.",
    "Thanks, that means a lot to me.",
    "Sounds fun! Talk soon.",
    "Oh nice, good for you!",
]
STATEMENTS = [
    "I started a new job as a nurse at the county hospital in March.",
    "My sister moved to Lisbon last year and teaches English there.",
    "We adopted a beagle puppy called Biscuit on Saturday.",
    "I finished my first half marathon in 1 hour 52 minutes.",
    "My grandfather built the cabin by the lake in 1974.",
    "I'm taking a pottery class every Tuesday evening at the community center.",
    "Our flight to Tokyo leaves on the 14th of April.",
    "I sold my old bike and bought a used Subaru Outback.",
]


def test_salience_ranks_statements_above_chatter_on_unseen_text(
    minilm_service: MemoryService,
) -> None:
    """The direction was fitted on LoCoMo; these lines were written for this test.

    It separates them on average but is no perfect detector: "Same here!"
    scores higher than any statement (very short lines are rare in training).
    """
    embedder = minilm_service.embedder
    model = load_ordering(embedder.name, embedder.dim)
    assert model.salience is not None
    chat = embedder.embed(CHATTER) @ model.salience
    said = embedder.embed(STATEMENTS) @ model.salience
    assert float(said.mean()) - float(chat.mean()) > 0.3
    assert int((said > np.median(chat)).sum()) >= 6


def test_search_puts_the_statement_above_a_question_that_mirrors_the_query(
    minilm_service: MemoryService,
) -> None:
    turns = [
        ("user", "Anna: Wow Ben, that's so cute! Do you have any pets at home?"),
        ("assistant", "Ben: We have a beagle called Biscuit and two cats, Mo and Pip."),
        ("user", "Anna: Haha, they sound adorable! Pets are the best."),
    ]
    minilm_service.add(
        user_id="ordering-user",
        messages=[MessageInput(role=r, content=c) for r, c in turns],
    )
    hits = minilm_service.search(
        user_id="ordering-user", query="What pets does Ben have?", relativity=0
    )
    assert hits[0].memory.value.startswith("Ben: We have a beagle")
