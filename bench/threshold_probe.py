"""What the default relativity threshold (0.45) keeps and what it drops, on LoCoMo.

Ingests the public half in-process. For every question (categories 1-4):

* **answers kept**: share of evidence turns that are in the top 25 at
  relativity 0 and still there at each threshold;
* **junk passed**: the same question asked of a *different* conversation (the
  next sample's user), where every hit is junk: mean hits that pass, and the
  share of questions with at least one hit passing.

Run: ``.venv/bin/python bench/threshold_probe.py`` (about 2 minutes).
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np

from memos.bench.locomo import DEFAULT_DATA, load_samples
from memos.domain.models import MessageInput
from memos.service import MemoryService
from memos.settings import load_settings

THRESHOLDS = (0.3, 0.45, 0.6, 0.75)


def main() -> None:
    samples = load_samples(DEFAULT_DATA)
    svc = MemoryService.open(load_settings({"data_dir": tempfile.mkdtemp()}, environ={}))
    for sample in samples:
        for sess in sample.sessions:
            svc.add(
                user_id=sample.sample_id,
                conversation_id=sess.conversation_id,
                messages=[
                    MessageInput(
                        role=t.role,
                        content=t.content,
                        message_id=t.dia_id,
                        chat_time=sess.chat_time,
                    )
                    for t in sess.turns
                ],
            )
    kept = {t: 0 for t in THRESHOLDS}
    found = 0
    junk_hits: dict[float, list[int]] = {t: [] for t in THRESHOLDS}
    for i, sample in enumerate(samples):
        other = samples[(i + 1) % len(samples)].sample_id
        for q in sample.questions:
            if q.category == 5:
                continue
            hits = svc.search(user_id=sample.sample_id, query=q.text, limit=25, relativity=0.0)
            wanted = set(q.evidence)
            for h in hits:
                if any(s.message_id in wanted for s in h.memory.sources):
                    found += 1
                    for t in THRESHOLDS:
                        kept[t] += h.relativity >= t
            junk = svc.search(user_id=other, query=q.text, limit=25, relativity=0.0)
            for t in THRESHOLDS:
                junk_hits[t].append(sum(h.relativity >= t for h in junk))
    sys.stdout.write("threshold  answers kept  junk hits/question  questions with junk\n")
    for t in THRESHOLDS:
        j = np.array(junk_hits[t])
        sys.stdout.write(
            f"{t:9.2f}  {100 * kept[t] / found:11.1f}%  {j.mean():18.2f}  "
            f"{100 * float(np.mean(j > 0)):18.1f}%\n"
        )
    svc.close()


if __name__ == "__main__":
    main()
