"""Knobs of the working set, validated once so the hot path can trust them.

A frozen dataclass rather than a pydantic model: the working memory is a pure
in-process structure and must not depend on how the service reads settings.
The service's settings (``WorkingSettings``) map onto this one to one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DecayUnit = Literal["seconds", "events"]


@dataclass(frozen=True)
class WorkingConfig:
    """How big the working set is and how its heat is scored.

    ``score = decayed heat + topic_weight * cos(memory, recent topic)
    + usage_weight * log1p(uses)``; the lowest score is evicted first.

    * heat grows with events (a turn entering, a search returning the memory,
      a preload) by the event's gain, and halves every ``half_life`` units of
      ``decay`` (wall-clock seconds, or events observed for the same key);
    * the recent topic is the decayed sum of the latest query and turn vectors,
      so a memory close to what the user is talking about now survives even
      when it was not touched lately (the spec's "topic shift" example);
    * uses are how often search returned the memory while it was in the set:
      the "usage frequency" signal, kept undecayed so a stable favourite stays.
    """

    size: int = 32
    max_keys: int = 10_000
    decay: DecayUnit = "events"
    # 8 events (about four exchanges with a search each) kept the evidence of
    # LoCoMo questions in a 32-slot set best of 2-128 in the replay
    # (memos.bench.working_replay; bench/results/working_memory.json).
    half_life: float = 8.0
    turn_gain: float = 1.0
    search_gain: float = 1.0
    # Only a search's first ``search_admit`` hits may enter the set; the rest
    # heat members already in it and count usage. A search returns ~10 hits and
    # a conversation searches about once per turn, so admitting all of them
    # would flush the turns just said out of a 32-slot set within a few queries.
    search_admit: int = 3
    preload_gain: float = 0.5
    topic_weight: float = 0.5
    usage_weight: float = 0.1
    # Usage deltas waiting for the service to persist them; the oldest are
    # dropped beyond this so an undrained working memory stays bounded.
    max_pending_usage: int = 100_000

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("size must be at least 1")
        if self.max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        if self.decay not in ("seconds", "events"):
            raise ValueError("decay must be 'seconds' or 'events'")
        if not self.half_life > 0:
            raise ValueError("half_life must be positive")
        for name in ("turn_gain", "search_gain", "preload_gain", "topic_weight", "usage_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.search_admit < 0:
            raise ValueError("search_admit must not be negative")
        if self.max_pending_usage < 1:
            raise ValueError("max_pending_usage must be at least 1")
