"""BM25 in SQL over ``tsvector`` columns, ranking like the SQLite adapter's index.

Documents are tokenised in Python by :func:`memos.text.lexical.lexical_tokens`
(Snowball stems, jieba for Chinese), exactly as for SQLite, and stored as a
``tsvector`` literal with positions, so PostgreSQL never re-parses the text and
every language gets the same terms on both adapters. BM25 (k1 1.2, b 0.75) is
computed from the positions (term frequency), ``lex_len`` (document length) and
the cube's ``cube_stats`` (N and total length).

Cost is bounded at any cube size. Document frequencies are counted through
the GIN index up to ``DF_CAP``, except for the terms ANALYZE's statistics
(``pg_stats.most_common_elems``) already show to be that common, whose df is
read off the statistics; at most ``BUDGET`` matching rows are scored:
candidates are the rows holding the query's rarest terms (ascending df, as many
terms under ``DF_CAP`` as fit the budget). While the query's terms together
match at most ``BUDGET`` rows (every cube of a few thousand memories, and rare
words at any size) the ranking equals the SQLite adapter's. When even the rarest
term is that common, candidates are the rows holding it and one of the next
three rarest terms. Either way, documents that share only common words with the query
may be missed in large cubes, which the vector half of hybrid search covers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import psycopg

from memos.text.lexical import K1, NEGLIGIBLE, B, lexical_text, lexical_tokens

DF_CAP = 1_000
BUDGET = 1_500
STATS_TTL_S = 300.0  # how long a process keeps the lexeme statistics
MAX_POSITIONS = 256  # PostgreSQL keeps at most 256 positions per lexeme
MAX_POSITION = 16_383
MAX_LEXEME_BYTES = 2_000  # PostgreSQL's limit is 2,047


def _quote(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def document(key: str, value: str, context: str = "") -> tuple[str, int]:
    """(tsvector literal, document length) of a memory's indexed text."""
    tokens = [
        t for t in lexical_tokens(lexical_text(key, value, context))
        if len(t.encode()) <= MAX_LEXEME_BYTES
    ]
    positions: dict[str, list[str]] = {}
    for i, token in enumerate(tokens, start=1):
        at = positions.setdefault(token, [])
        if len(at) < MAX_POSITIONS:
            at.append(str(min(i, MAX_POSITION)))
    literal = " ".join(f"{_quote(t)}:{','.join(p)}" for t, p in positions.items())
    return literal, len(tokens)


def query_terms(query: str) -> list[str]:
    """Distinct index terms of a query, in order."""
    return [
        t for t in dict.fromkeys(lexical_tokens(query)) if len(t.encode()) <= MAX_LEXEME_BYTES
    ]


def tsquery(terms: list[str]) -> str:
    """An OR-query literal over ``terms`` (bound as a parameter, cast to tsquery)."""
    return " | ".join(_quote(t) for t in terms)


def document_frequencies(conn: psycopg.Connection, cube_id: str, terms: list[str]) -> list[int]:
    """Live documents of the cube containing each term, counted up to ``DF_CAP``."""
    row = conn.execute(
        "SELECT array_agg(("
        "  SELECT count(*) FROM (SELECT 1 FROM memories m WHERE m.cube_id = %s "
        "  AND m.status = 'activated' AND m.lex @@ t.q::tsquery LIMIT %s) s"
        ") ORDER BY t.ord) FROM unnest(%s::text[]) WITH ORDINALITY AS t(q, ord)",
        (cube_id, DF_CAP, [_quote(t) for t in terms]),
    ).fetchone()
    return [int(x) for x in (row[0] if row and row[0] else [])]


@dataclass(frozen=True)
class Plan:
    terms: list[str]  # scored terms
    idfs: list[float]
    match: str  # tsquery literal selecting candidates
    c1: float  # k1 * (1 - b)
    c2: float  # k1 * b / avgdl
    candidates: int


def plan(terms: list[str], dfs: list[int], live: int, total_len: int) -> Plan | None:
    """Which terms score, with what idf, and which select candidates; None: no match."""
    weighted = [
        (t, math.log(1.0 + max(live - df + 0.5, 0.5) / (df + 0.5)), df)
        for t, df in zip(terms, dfs, strict=True)
        if df
    ]
    if not weighted:
        return None
    # as the SQLite index: a term in (nearly) every document is left out when the
    # query has anything else
    useful = [w for w in weighted if w[1] * (K1 + 1) >= NEGLIGIBLE] or weighted
    by_df = sorted(useful, key=lambda w: w[2])
    matching: list[str] = []
    matched = 0
    for term, _, df in by_df:
        if df >= DF_CAP or (matching and matched + df > BUDGET):
            break
        matching.append(term)
        matched += df
    if matching:
        match = tsquery(matching)
    elif len(by_df) > 1:
        # even the rarest term is common (large cubes): candidates are the rows
        # holding it and at least one of the next three, the ones BM25 ranks first;
        # the index walks the rarest term's postings, skipping through the others'
        rarest = [_quote(w[0]) for w in by_df[:4]]
        match = f"{rarest[0]} & ({' | '.join(rarest[1:])})"
    else:
        match = tsquery([by_df[0][0]])
    avgdl = max(total_len / max(live, 1), 1e-9)
    return Plan(
        terms=[w[0] for w in useful],
        idfs=[w[1] for w in useful],
        match=match,
        c1=K1 * (1 - B),
        c2=K1 * B / avgdl,
        candidates=BUDGET,
    )


def common_lexemes(conn: psycopg.Connection) -> dict[str, float]:
    """Share of rows holding each of the table's most common lexemes (ANALYZE's
    statistics; empty until the table was analysed)."""
    row = conn.execute(
        "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = 'memories' AND attname = 'lex'"
    ).fetchone()
    if row is None or row[0] is None or row[1] is None:
        return {}
    return {str(t): float(f) for t, f in zip(row[0], row[1], strict=False)}


def estimate_frequencies(
    conn: psycopg.Connection, cube_id: str, terms: list[str], common: dict[str, float], live: int
) -> list[int]:
    """Document frequencies: counted for the terms the statistics call rare, read off
    the statistics (share of rows x the cube's size) for the common ones, whose
    exact count would walk a posting list of tens of thousands of rows."""
    estimated = {t: int(common[t] * live) for t in terms if t in common}
    counted = iter(document_frequencies(
        conn, cube_id, [t for t in terms if estimated.get(t, 0) < DF_CAP]
    ))
    return [
        min(estimated[t], live) if estimated.get(t, 0) >= DF_CAP else next(counted)
        for t in terms
    ]


# {where} is built by the store from its scope predicate and compiled filter.
SCORE_SQL = (
    "WITH q AS (SELECT * FROM unnest(%s::text[], %s::float8[]) AS q(term, idf)), "
    "q_terms AS (SELECT array_agg(term) AS t FROM q), "
    "cand AS (SELECT m.pk, m.id, m.lex, m.lex_len FROM memories m WHERE {where} LIMIT %s) "
    "SELECT c.id, sum(q.idf * " + str(K1 + 1) + " * tf.n / (tf.n + %s + %s * c.lex_len)) AS score "
    "FROM cand c CROSS JOIN q_terms "
    # only the query's lexemes: marked with weight A, then filtered on it
    "CROSS JOIN LATERAL unnest(ts_filter(setweight(c.lex, 'A', q_terms.t), '{{a}}')) "
    "AS u(lexeme, positions, weights) "
    "JOIN q ON q.term = u.lexeme "
    "CROSS JOIN LATERAL (SELECT coalesce(array_length(u.positions, 1), 1)::float8 AS n) tf "
    "GROUP BY c.pk, c.id ORDER BY score DESC, c.pk LIMIT %s"
)
