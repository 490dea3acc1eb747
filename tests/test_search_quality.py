"""Retrieval quality on a small realistic profile with the packaged MiniLM embedder."""

from __future__ import annotations

import pytest

from memos.domain.models import MessageInput, Scope
from memos.service import MemoryService

pytestmark = pytest.mark.timeout(180)

USER = "quality-user"

FACTS = {
    "dog": "I have a golden retriever named Max who is four years old.",
    "job": "I work as a data engineer at a logistics company.",
    "city": "I moved to Denver, Colorado three years ago.",
    "allergy": "I'm allergic to shellfish, so I avoid shrimp and lobster.",
    "wife": "My wife Priya is a pediatric nurse.",
    "marathon": "I ran my first marathon in Chicago last October.",
    "guitar": "I've been learning to play the acoustic guitar since January.",
    "coffee": "I drink two cups of black coffee every morning.",
    "car": "I drive a red Toyota Tacoma pickup truck.",
    "book": "My favourite novel is The Name of the Wind by Patrick Rothfuss.",
    "birthday": "My birthday is on the 14th of July.",
    "language": "I'm studying Spanish on Duolingo every evening.",
    "vegetarian": "I stopped eating red meat two years ago.",
    "brother": "My younger brother Sam lives in Seattle and works at a bakery.",
    "vacation": "We're planning a vacation to Japan next spring to see the cherry blossoms.",
    "team": "I'm a lifelong fan of the Denver Broncos.",
    "sleep": "I usually go to bed around 11 pm and wake up at 6 am.",
    "degree": "I studied computer science at the University of Michigan.",
    "plant": "I keep a small herb garden with basil, mint and rosemary on my balcony.",
    "game": "On weekends I play chess online, my rating is about 1500.",
    "phone": "My phone is a Google Pixel 8.",
    "mother": "My mom is a retired high school chemistry teacher.",
    "movie": "My favourite film is Interstellar.",
    "fear": "I'm afraid of heights and avoid glass elevators.",
    "instrument_kid": "My daughter takes violin lessons on Saturdays.",
    "gym": "I go to the gym on Mondays, Wednesdays and Fridays.",
    "pet_cat": "We also adopted a grey cat called Luna last month.",
    "podcast": "I listen to history podcasts during my commute.",
    "food": "My favourite dish is chicken tikka masala.",
    "savings": "I'm saving money to buy a house in the mountains.",
}

QUERIES = [
    ("What is the name of my dog?", "dog"),
    ("Where do I work?", "job"),
    ("Which city do I live in?", "city"),
    ("What food am I allergic to?", "allergy"),
    ("What does my wife do for a living?", "wife"),
    ("Have I ever run a marathon?", "marathon"),
    ("What musical instrument am I learning?", "guitar"),
    ("How do I take my coffee?", "coffee"),
    ("What car do I drive?", "car"),
    ("What is my favourite book?", "book"),
    ("When is my birthday?", "birthday"),
    ("Which language am I studying?", "language"),
    ("Where does my brother live?", "brother"),
    ("Where are we going on holiday?", "vacation"),
    ("Which football team do I support?", "team"),
    ("What time do I go to sleep?", "sleep"),
    ("Where did I go to university?", "degree"),
    ("What herbs do I grow?", "plant"),
    ("What is my chess rating?", "game"),
    ("What smartphone do I use?", "phone"),
    ("What did my mother teach?", "mother"),
    ("What is my favourite movie?", "movie"),
    ("What am I scared of?", "fear"),
    ("What are my daughter's hobbies?", "instrument_kid"),
    ("Which days do I work out?", "gym"),
    ("What is my cat's name?", "pet_cat"),
    ("What do I listen to while commuting?", "podcast"),
    ("What am I saving up for?", "savings"),
]

ZH_FACTS = [
    "我住在杭州，每天骑自行车去公司上班。",
    "我最喜欢的食物是北京烤鸭。",
    "我女儿在上海读大学，学的是建筑。",
    "周末我经常去西湖边跑步。",
    # distractors: similar shapes, different facts
    "我哥哥住在南京，每天开车去医院上班。",
    "我最喜欢的饮料是云南普洱茶。",
    "我儿子在广州读高中，喜欢打篮球。",
    "晚上我经常去公园散步。",
    "我妈妈以前是一名小学老师。",
    "我去年夏天去了成都旅游，吃了很多火锅。",
    "我每天早上六点起床，先喝一杯温水。",
    "我的猫叫小白，今年三岁了。",
]


@pytest.fixture
def profile(minilm_service: MemoryService) -> dict[str, str]:
    """Add the facts as separate user turns; returns fact key -> memory id."""
    ids: dict[str, str] = {}
    for n, (key, text) in enumerate(FACTS.items()):
        result = minilm_service.add(
            user_id=USER, conversation_id=f"session-{n // 5}",
            messages=[MessageInput(role="user", content=text, message_id=f"fact-{key}")],
        )
        assert len(result.memory_ids) == 1
        ids[key] = result.memory_ids[0]
    return ids


def test_right_memory_is_in_the_top_three(minilm_service: MemoryService,
                                          profile: dict[str, str]) -> None:
    misses: list[str] = []
    top1 = 0
    for query, key in QUERIES:
        hits = minilm_service.search(user_id=USER, query=query, limit=3, relativity=0)
        got = [h.memory.id for h in hits]
        assert len(got) == 3
        if got and got[0] == profile[key]:
            top1 += 1
        if profile[key] not in got:
            misses.append(f"{query!r} -> {[h.memory.value for h in hits]}")
    recall = 1 - len(misses) / len(QUERIES)
    assert recall >= 0.8, f"top-3 recall {recall:.2f}; misses:\n" + "\n".join(misses)
    assert top1 / len(QUERIES) >= 0.6, f"top-1 accuracy {top1 / len(QUERIES):.2f}"


def test_default_threshold_keeps_the_answer_and_drops_noise(
    minilm_service: MemoryService, profile: dict[str, str]
) -> None:
    hits = minilm_service.search(user_id=USER, query="What is the name of my dog?")
    assert hits and hits[0].memory.id == profile["dog"]
    assert hits[0].relativity > 0.5
    # unrelated memories fall under the default relativity threshold
    values = [h.memory.value for h in hits]
    assert FACTS["phone"] not in values and FACTS["birthday"] not in values
    nonsense = minilm_service.search(user_id=USER, query="quantum chromodynamics lattice QCD")
    assert len(nonsense) <= 2


def test_exact_keyword_beats_paraphrase_noise(minilm_service: MemoryService,
                                              profile: dict[str, str]) -> None:
    # rare names are found through BM25 even when the embedding is unsure
    hits = minilm_service.search(user_id=USER, query="Rothfuss", limit=3, relativity=0)
    assert hits[0].memory.id == profile["book"]
    hits = minilm_service.search(user_id=USER, query="Tacoma", limit=3, relativity=0)
    assert hits[0].memory.id == profile["car"]


def test_mixed_chinese_and_english_data(minilm_service: MemoryService,
                                        profile: dict[str, str]) -> None:
    zh_ids = {}
    for i, text in enumerate(ZH_FACTS):
        result = minilm_service.add(user_id=USER, conversation_id="zh",
                                    messages=[MessageInput(role="user", content=text,
                                                           message_id=f"zh-{i}")])
        zh_ids[text] = result.memory_ids[0]
    for query, want in [
        ("杭州", ZH_FACTS[0]),
        ("我住在哪个城市？杭州吗", ZH_FACTS[0]),
        ("烤鸭", ZH_FACTS[1]),
        ("我女儿在哪里读大学", ZH_FACTS[2]),
        ("西湖", ZH_FACTS[3]),
    ]:
        hits = minilm_service.search(user_id=USER, query=query, limit=3, relativity=0)
        assert zh_ids[want] in [h.memory.id for h in hits[:3]], (
            query, [h.memory.value for h in hits])
    # the lexical side (jieba + BM25) finds the Chinese fact on its own
    scope = Scope.for_user(USER)
    for query, want in [("杭州", ZH_FACTS[0]), ("烤鸭", ZH_FACTS[1]), ("西湖", ZH_FACTS[3])]:
        lexical = minilm_service.store.text_search(scope, query, 3, None)
        assert [h.memory_id for h in lexical][:1] == [zh_ids[want]], (query, lexical)
    # English retrieval is unaffected by the Chinese memories
    hits = minilm_service.search(user_id=USER, query="What is the name of my dog?", limit=3,
                                 relativity=0)
    assert hits[0].memory.id == profile["dog"]
    # with the default threshold, a Chinese keyword query still returns its fact
    hits = minilm_service.search(user_id=USER, query="杭州")
    assert zh_ids[ZH_FACTS[0]] in [h.memory.id for h in hits]


def test_readme_tour_query_passes_the_default_threshold(minilm_service: MemoryService) -> None:
    """The README's first search must answer with the seed's default relativity (0.45)."""
    minilm_service.add(
        user_id="tour-alice",
        conversation_id="trip-01",
        messages=[MessageInput(role="user", content=(
            "I moved to Hangzhou last spring and I love spicy food."))],
    )
    hits = minilm_service.search(user_id="tour-alice", query="Where do I live?")
    assert hits and "Hangzhou" in hits[0].memory.value
    assert hits[0].relativity >= 0.45
    # and the other user in the seed's isolation example sees nothing of it
    assert minilm_service.search(user_id="tour-bob", query="Where do I live?") == []
