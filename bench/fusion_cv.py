"""Leave-one-conversation-out cross-validation of the hybrid fusion weights on LoCoMo.

Ingests the public half in-process once, scores a small grid of (vector weight,
text weight, RRF k) by evidence recall within 500 words (categories 1-4), then
for each conversation picks the best setting on the other four and tests it on
the held-out one. Run: ``.venv/bin/python bench/fusion_cv.py`` (about 4 minutes).
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np

from memos.bench.locomo import DEFAULT_DATA, Retrieved, budget_recall, load_samples
from memos.domain.models import MessageInput
from memos.service import MemoryService
from memos.settings import load_settings

Config = tuple[float, float, int]
GRID: list[Config] = [(vw, 1.0, k) for vw in (0.4, 0.6, 0.8, 1.0) for k in (10, 20, 60)]
BASELINE: Config = (1.0, 1.0, 60)


def main() -> None:
    samples = load_samples(DEFAULT_DATA)
    svc = MemoryService.open(load_settings({"data_dir": tempfile.mkdtemp()}, environ={}))
    for sample in samples:
        for sess in sample.sessions:
            svc.add(
                user_id=sample.sample_id,
                conversation_id=sess.conversation_id,
                messages=[
                    MessageInput(role=t.role, content=t.content, message_id=t.dia_id,
                                 chat_time=sess.chat_time)
                    for t in sess.turns
                ],
            )
        sys.stderr.write(f"ingested {sample.sample_id}\n")

    def per_sample() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for sample in samples:
            scores = []
            for q in sample.questions:
                if q.category == 5:
                    continue
                hits = svc.search(user_id=sample.sample_id, query=q.text, limit=25,
                                  relativity=0.0)
                got = [Retrieved(len(h.memory.value.split()),
                                 frozenset(s.message_id or "" for s in h.memory.sources))
                       for h in hits]
                scores.append(budget_recall(got, q.evidence, 500))
            out[sample.sample_id] = scores
        return out

    search = svc.searcher.settings
    table: dict[Config, dict[str, list[float]]] = {}
    for cfg in GRID:
        search.vector_weight, search.text_weight, search.rrf_k = cfg
        table[cfg] = per_sample()
        every = [x for xs in table[cfg].values() for x in xs]
        sys.stdout.write(f"{cfg}: recall@500 {100 * np.mean(every):.2f}\n")

    ids = [s.sample_id for s in samples]
    chosen_total = base_total = 0.0
    count = 0
    for held in ids:
        def train(cfg: Config, held: str = held) -> float:
            return float(np.mean([x for sid in ids if sid != held for x in table[cfg][sid]]))

        best = max(GRID, key=train)
        test, base = table[best][held], table[BASELINE][held]
        chosen_total += sum(test)
        base_total += sum(base)
        count += len(test)
        sys.stdout.write(f"held out {held}: chose {best}, recall {100 * np.mean(test):.1f} "
                         f"(baseline {100 * np.mean(base):.1f})\n")
    sys.stdout.write(f"cross-validated recall@500: {100 * chosen_total / count:.2f} "
                     f"vs baseline {100 * base_total / count:.2f}\n")
    svc.close()


if __name__ == "__main__":
    main()
