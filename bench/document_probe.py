"""Probe: does the chat-fitted ordering (salience prior included) hurt search over documents?

The ordering stage was fitted on LoCoMo chat turns. This probe asks what it does
to prose and tables instead. The corpus is the Markdown in ``../shared/spec``
plus ``docs/decisions.md`` and ``docs/deploy.md``. Each section's body is cut
into chunks of whole lines (up to about 80 words; heading text, table rules and
section numbers left out) and
stored as one memory per chunk. Each section heading that is unique and has at
least two content words becomes a query. The section's chunks are its evidence.

Three configurations run over the same corpus in one process:

* ``salience``: the default (five features and the MiniLM salience direction);
* ``plain``: ``search.salience = false`` (the five features only);
* ``BM25``: the bench's pure-Python BM25 over the same chunks.

Printed: evidence recall within 200/500 words, hit@1 and MRR of the first
evidence chunk, and the median words of the top 10.
Run: ``.venv/bin/python bench/document_probe.py`` (about 2 minutes).
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from memos.bench.locomo import BM25, Retrieved, budget_recall
from memos.domain.models import MessageInput
from memos.service import MemoryService
from memos.settings import load_settings
from memos.text.lexical import lexical_tokens

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*sorted((ROOT.parent / "shared" / "spec").glob("*.md")), ROOT / "docs" / "decisions.md"]
SOURCES.append(ROOT / "docs" / "deploy.md")
HEADING = re.compile(r"^(#{2,4})\s+(.*\S)\s*$")
CHUNK_WORDS = 80
Queries = list[tuple[str, frozenset[str]]]
LIMIT = 25


@dataclass
class Section:
    heading: str
    chunks: list[str]


def sections(path: Path) -> list[Section]:
    """Markdown sections (## to ####) with their body lines cut into chunks."""
    out: list[Section] = []
    heading = ""
    lines: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), "## end"]:
        m = HEADING.match(line)
        if m:
            if heading and lines:
                out.append(Section(heading, chunk(lines)))
            heading, lines = clean_heading(m.group(2)), []
        elif line.strip() and not set(line.strip()) <= set("|-: "):
            lines.append(line.strip())
    return out


def clean_heading(text: str) -> str:
    """Drop section numbers, asides in brackets and Markdown marks: what a user would type."""
    text = re.sub(r"^[\d.]+\s+", "", text)
    text = re.sub(r"\s*[(\[].*?[)\]]", "", text)
    return re.sub(r"[*`_#]", "", text).split("—")[0].strip()


def chunk(lines: list[str]) -> list[str]:
    """Join consecutive lines until a chunk holds about CHUNK_WORDS words; cut longer lines."""
    pieces: list[str] = []
    for line in lines:
        words = line.split()
        pieces.extend(
            " ".join(words[i : i + CHUNK_WORDS]) for i in range(0, len(words), CHUNK_WORDS)
        )
    chunks: list[str] = []
    for p in pieces:
        if chunks and len(chunks[-1].split()) + len(p.split()) <= CHUNK_WORDS:
            chunks[-1] += "\n" + p
        else:
            chunks.append(p)
    return chunks


def corpus() -> tuple[list[str], Queries]:
    """Chunk texts (id = index) and the (query, evidence ids) pairs."""
    texts: list[str] = []
    queries: Queries = []
    secs = [s for path in SOURCES if path.exists() for s in sections(path)]
    counts: dict[str, int] = {}
    for s in secs:
        counts[s.heading.lower()] = counts.get(s.heading.lower(), 0) + 1
    for s in secs:
        ids = []
        for chunk in s.chunks:
            ids.append(str(len(texts)))
            texts.append(chunk)
        if counts[s.heading.lower()] == 1 and len(lexical_tokens(s.heading)) >= 2:
            queries.append((s.heading, frozenset(ids)))
    return texts, queries


def run(
    texts: list[str], queries: list[tuple[str, frozenset[str]]], salience: bool
) -> list[list[Retrieved]]:
    settings = load_settings(
        {"data_dir": tempfile.mkdtemp(), "search": {"salience": salience}}, environ={}
    )
    svc = MemoryService.open(settings)
    try:
        for start in range(0, len(texts), 100):
            svc.add(
                user_id="docs",
                conversation_id="corpus",
                messages=[
                    MessageInput(role="user", content=t, message_id=str(start + i))
                    for i, t in enumerate(texts[start : start + 100])
                ],
            )
        results = []
        for query, _ in queries:
            hits = svc.search(user_id="docs", query=query, limit=LIMIT, relativity=0.0)
            results.append(
                [
                    Retrieved(
                        len(h.memory.value.split()),
                        frozenset(s.message_id or "" for s in h.memory.sources),
                    )
                    for h in hits
                ]
            )
        return results
    finally:
        svc.close()


def report(
    label: str, got: list[list[Retrieved]], queries: list[tuple[str, frozenset[str]]]
) -> None:
    r200 = statistics.mean(budget_recall(g, w, 200) for g, (_, w) in zip(got, queries, strict=True))
    r500 = statistics.mean(budget_recall(g, w, 500) for g, (_, w) in zip(got, queries, strict=True))
    ranks = [
        next((i + 1 for i, r in enumerate(g) if r.sources & w), None)
        for g, (_, w) in zip(got, queries, strict=True)
    ]
    hit1 = statistics.mean(1.0 if r == 1 else 0.0 for r in ranks)
    mrr = statistics.mean(1.0 / r if r else 0.0 for r in ranks)
    words = statistics.median(sum(r.words for r in g[:10]) for g in got)
    sys.stdout.write(
        f"{label:9s} recall@200 {100 * r200:5.1f}  @500 {100 * r500:5.1f}  "
        f"hit@1 {100 * hit1:5.1f}  MRR {mrr:.3f}  top-10 words {words:.0f}\n"
    )


def main() -> None:
    texts, queries = corpus()
    sys.stdout.write(f"{len(texts)} chunks, {len(queries)} heading queries\n")
    bm25 = BM25(texts)
    base = [
        [Retrieved(len(texts[i].split()), frozenset({str(i)})) for i, _ in bm25.top(q, LIMIT)]
        for q, _ in queries
    ]
    report("BM25", base, queries)
    report("plain", run(texts, queries, salience=False), queries)
    report("salience", run(texts, queries, salience=True), queries)


if __name__ == "__main__":
    main()
