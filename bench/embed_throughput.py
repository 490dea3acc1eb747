"""Embedding throughput on LoCoMo-like text: MiniLM (the default) vs the hash baseline.

Two corpora of 1000 items are drawn from the LoCoMo conversation turns:
``sentences`` splits turns into sentences (short, the target workload) and
``turns`` uses whole turns (longer, what ``add`` usually embeds).
Each is embedded in 3 passes after a warm-up; the median rate is reported.

Usage: python bench/embed_throughput.py [--locomo PATH] [--threads 2] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

from memos.embedders import Embedder
from memos.embedders.hashing import HashEmbedder
from memos.embedders.minilm import MiniLMEmbedder

DEFAULT_LOCOMO = Path("/work/shared/bench/locomo/locomo_public.json")
N_TEXTS = 1000
PASSES = 3
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def load_turns(path: Path) -> list[str]:
    """Every dialogue turn's text, in file order."""
    samples = json.loads(path.read_text(encoding="utf-8"))
    turns: list[str] = []
    for sample in samples:
        for key, value in sample["conversation"].items():
            if key.startswith("session_") and isinstance(value, list):
                turns.extend(turn["text"] for turn in value if turn.get("text"))
    return turns


def make_corpora(turns: list[str]) -> dict[str, list[str]]:
    sentences = [s for t in turns for s in _SENTENCE_END.split(t) if len(s.split()) >= 3]
    return {"sentences": sentences[:N_TEXTS], "turns": turns[:N_TEXTS]}


def rate(embedder: Embedder, texts: list[str]) -> float:
    """Median texts/s over PASSES passes, after one warm-up call that loads the model."""
    embedder.embed(texts[:32])
    timings = []
    for _ in range(PASSES):
        start = time.perf_counter()
        embedder.embed(texts)
        timings.append(time.perf_counter() - start)
    return len(texts) / statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locomo", type=Path, default=DEFAULT_LOCOMO)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    corpora = make_corpora(load_turns(args.locomo))
    embedders: list[Embedder] = [
        MiniLMEmbedder(threads=args.threads, batch_size=args.batch_size),
        HashEmbedder(),
    ]
    print(f"threads={args.threads} batch_size={args.batch_size} passes={PASSES} (median)")
    for label, texts in corpora.items():
        words = statistics.mean(len(t.split()) for t in texts)
        print(f"\n{label}: {len(texts)} texts, {words:.1f} words on average")
        for embedder in embedders:
            print(f"  {embedder.name:<22} {rate(embedder, texts):>10.1f} texts/s")


if __name__ == "__main__":
    main()
