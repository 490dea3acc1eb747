"""``memos bench scale`` at toy sizes: every code path, the JSON shape, the table and the SVG.

The hash embedder (set through the environment, so the spawned ``memos serve``
uses it too) keeps this fast; the real-embedder paths are the same code.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from memos.bench.locomo import DEFAULT_DATA
from memos.bench.scale import batches, tenant_layout
from memos.bench.scale_report import format_table, render_svg
from memos.cli.main import cli


def test_batches_never_cross_a_tenant_boundary() -> None:
    ranges = list(batches([10] * 1250, boundary=300))
    assert ranges[0] == (0, 300)
    assert all(start // 300 == (end - 1) // 300 for start, end in ranges)
    assert [e - s for s, e in batches([10] * 1200)] == [500, 500, 200]
    assert [e - s for s, e in batches([20_000] * 3)] == [1, 1, 1]  # token budget


def test_tenant_layout_needs_enough_memories_per_tenant() -> None:
    assert tenant_layout(100_000, 1000) == 100
    assert tenant_layout(10_000, 1000) is None  # 10 each: too few to mean anything
    assert tenant_layout(1_000_000, 1000) == 1000
    assert tenant_layout(2_000, 0) is None


@pytest.mark.skipif(not DEFAULT_DATA.exists(), reason="LoCoMo data not available")
def test_scale_suite_writes_results_table_and_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMOS_EMBEDDER__KIND", "hash")
    out, svg = tmp_path / "scale.json", tmp_path / "scale.svg"
    result = CliRunner().invoke(
        cli,
        [
            "bench", "scale", "--sizes", "1000,2000", "--tenants", "10", "--queries", "12",
            "--http-queries", "3", "--exact-messages", "200", "--work-dir", str(tmp_path / "w"),
            "--out", str(out), "--svg", str(svg),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["config"]["sizes"] == [1000, 2000]
    runs = results["runs"]
    assert [(r["n_memories"], r["layout"], r["tenants"]) for r in runs] == [
        (1000, "one-tenant", 1),
        (1000, "tenants", 10),
        (2000, "one-tenant", 1),
        (2000, "tenants", 10),
    ]
    for run in runs:
        for stage in ("search_limit10", "search_limit25_rel0", "embed_query", "vector_search",
                      "text_search", "numpy_exact_scan"):  # fmt: skip
            s = run["latency"][stage]
            assert s["n"] == 12 and 0 < s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"]
        assert run["recall"]["top1_matches_exact"] == 1.0  # exact scans below 20k rows
        assert run["recall"]["recall_at_10"] == 1.0
        assert run["index"]["build_seconds"] > 0
        assert run["index"]["first_search_ms"]["n"] == run["tenants"]
        assert run["disk"]["bytes_per_memory"] > 1000
        assert run["server"]["rss_mb_loaded"] > 0
        assert run["server"]["http_search_limit10"]["n"] == 3
        assert run["vector_first_pass"] == "exact scan"
    ingest = runs[0]["ingest"]
    assert ingest["messages"] == 1000 and ingest["real_embedder"]["messages"] == 200
    assert ingest["store_msgs_per_s"] > 0 and ingest["real_embedder"]["embedder_msgs_per_s"] > 0
    assert runs[1]["memories_per_tenant"] == 100
    # the table is in the JSON and printed; the chart is an SVG with both panels' lines
    assert results["table_markdown"] == format_table(results)
    assert "| 2k | 10 x 200 |" in result.output
    text = svg.read_text(encoding="utf-8")
    assert text.startswith("<svg") and text.rstrip().endswith("</svg>")
    assert text.count("<polyline") == 6  # p50, p95 for both layouts; RSS for both
    assert text == render_svg(results)


def test_retenant_spreads_rows_over_owned_cubes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memos.bench.scale import USER, retenant
    from memos.domain.models import MessageInput
    from memos.service import MemoryService
    from memos.settings import load_settings

    monkeypatch.setenv("MEMOS_EMBEDDER__KIND", "hash")
    settings = load_settings({"data_dir": tmp_path / "data"})
    with_svc = MemoryService.open(settings)
    try:
        for b in range(2):
            with_svc.add(
                user_id=USER,
                conversation_id=f"c{b}",
                messages=[
                    MessageInput(role="user", content=f"message {b} {i} about rivers")
                    for i in range(6)
                ],
            )
    finally:
        with_svc.close()
    users = ["t0", "t1", "t2"]
    retenant(settings.db_path, USER, users)
    conn = sqlite3.connect(settings.db_path)
    try:
        for table in ("memories", "messages", "memory_vectors"):
            counts = dict(conn.execute(f"SELECT cube_id, count(*) FROM {table} GROUP BY cube_id"))
            assert counts == {"t0": 4, "t1": 4, "t2": 4}, table
        assert dict(conn.execute("SELECT cube_id, owner_id FROM cubes")) == {u: u for u in users}
    finally:
        conn.close()
    svc = MemoryService.open(settings)
    try:
        hits = svc.search(user_id="t1", query="rivers", limit=10, relativity=0)
        assert {h.memory.cube_id for h in hits} == {"t1"} and len(hits) == 4
        values = {h.memory.value for h in hits}
        assert values == {
            f"message {b} {i} about rivers" for b, i in [(0, 4), (0, 5), (1, 0), (1, 1)]
        }
    finally:
        svc.close()
