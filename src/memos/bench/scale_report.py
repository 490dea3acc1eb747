"""Reports of ``memos bench scale``: Markdown tables and a small hand-written SVG chart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

Point = tuple[float, float]

TARGETS_P95_MS = {100_000: 30.0, 1_000_000: 60.0}  # the targets, one tenant


def _n(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def _layout(run: dict[str, Any]) -> str:
    if run["layout"] == "one-tenant":
        return "1 tenant"
    return f"{run['tenants']:,} x {run['memories_per_tenant']:,}"


def _f(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int | float) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def format_table(results: dict[str, Any]) -> str:
    """Two Markdown tables (latency; ingest, build, disk, memory) plus the run's context."""
    cfg = results["config"]
    runs = results["runs"]
    lines = [
        f"Search at scale: {len(runs)} runs, {cfg['queries']} queries each, "
        f"{results['machine'].get('cpus')} cores, {results['machine'].get('date')}",
        "",
        "Latency in ms, in-process. `search` = `MemoryService.search` limit 10 including the "
        "query embedding; the other columns are its stages alone; numpy exact = `X @ q` + "
        "`argpartition` over the same vectors (the in-run baseline).",
        "",
        "| memories | layout | vector first pass | search p50 | p95 | p99 | query embedding p50 "
        "| vector p50 / p95 | keyword p50 / p95 | numpy exact p50 | vector ÷ exact "
        "| recall@10 / @100 | top-1 = exact |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lat = run["latency"]
        s, v, t = lat["search_limit10"], lat["vector_search"], lat["text_search"]
        rec = run["recall"]
        top1 = rec["top1_matches_exact"]
        lines.append(
            f"| {_n(run['n_memories'])} | {_layout(run)} | {run['vector_first_pass']} "
            f"| {_f(s['p50_ms'])} | {_f(s['p95_ms'])} | {_f(s['p99_ms'])} "
            f"| {_f(lat['embed_query']['p50_ms'])} "
            f"| {_f(v['p50_ms'])} / {_f(v['p95_ms'])} | {_f(t['p50_ms'])} / {_f(t['p95_ms'])} "
            f"| {_f(lat['numpy_exact_scan']['p50_ms'])} "
            f"| {_f(run['ratios']['vector_search_vs_numpy_p50'], 2)} "
            f"| {_f(rec['recall_at_10'], 3)} / {_f(rec['recall_at_100'], 3)} "
            f"| {_f(None if top1 is None else 100 * top1)}% |"
        )
    lines += [
        "",
        "Ingest: `store` = messages/s through `MemoryService.add` with the vectors given "
        "(validation, reader, SQLite, index upkeep); `embedder` = the real MiniLM embedder "
        "alone on the first messages. Index build = the first search(es) after a cold open "
        "(for N tenants: every tenant searched once). RSS = a fresh `memos serve` after every "
        "index is loaded.",
        "",
        "| memories | layout | ingest store msgs/s | embedder msgs/s | index build s "
        "| per tenant p50 ms | disk B/memory | serve RSS MiB | HTTP p50 / p95 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        ing = run["ingest"]
        first = run["layout"] == "one-tenant"
        srv = run["server"]
        http = srv.get("http_search_limit10", {})
        lines.append(
            f"| {_n(run['n_memories'])} | {_layout(run)} "
            f"| {_f(ing['store_msgs_per_s']) if first else 'same rows'} "
            f"| {_f(ing['real_embedder']['embedder_msgs_per_s']) if first else ''} "
            f"| {_f(run['index']['build_seconds'])} "
            f"| {_f(run['index']['first_search_ms']['p50_ms'])} "
            f"| {_f(run['disk']['bytes_per_memory'])} | {_f(srv.get('rss_mb_loaded'))} "
            f"| {_f(http.get('p50_ms'))} / {_f(http.get('p95_ms'))} |"
        )
    lines += ["", f"total {results['total_seconds']:.0f} s"]
    return "\n".join(lines)


# ------------------------------------------------------------------ SVG
W, H = 760, 330
PANEL_W, PANEL_H = 300, 210
LEFT = (70, 50)
RIGHT = (440, 50)
BLUE, ORANGE, GREEN, RED, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#888888"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)


class _Panel:
    def __init__(
        self, origin: tuple[int, int], xs: Sequence[float], y_max: float, title: str, y_label: str
    ) -> None:
        self.x0, self.y0 = origin
        lo, hi = math.log10(min(xs)), math.log10(max(xs))
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        pad = 0.08 * (hi - lo)
        self.lo, self.hi = lo - pad, hi + pad
        self.y_max = _nice_max(y_max * 1.1)
        self.title, self.y_label = title, y_label

    def px(self, x: float, y: float) -> Point:
        fx = (math.log10(x) - self.lo) / (self.hi - self.lo)
        fy = min(max(y / self.y_max, 0.0), 1.05)
        return self.x0 + fx * PANEL_W, self.y0 + PANEL_H - fy * PANEL_H

    def frame(self, x_ticks: Sequence[int]) -> list[str]:
        x0, y0 = self.x0, self.y0
        out = [
            f'<text x="{x0 + PANEL_W / 2:.0f}" y="{y0 - 18}" text-anchor="middle" '
            f'font-size="13" font-weight="bold">{escape(self.title)}</text>',
            f'<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" '
            f'stroke="{GREY}"/>',
            f'<text x="{x0 - 48}" y="{y0 + PANEL_H / 2:.0f}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 {x0 - 48} {y0 + PANEL_H / 2:.0f})">{escape(self.y_label)}'
            "</text>",
            f'<text x="{x0 + PANEL_W / 2:.0f}" y="{y0 + PANEL_H + 34}" font-size="11" '
            'text-anchor="middle">memories (log scale)</text>',
        ]
        for i in range(6):
            y = self.y_max * i / 5
            _, py = self.px(10**self.lo, y)
            out.append(
                f'<line x1="{x0}" y1="{py:.1f}" x2="{x0 + PANEL_W}" y2="{py:.1f}" '
                'stroke="#eeeeee"/>'
            )
            out.append(
                f'<text x="{x0 - 6}" y="{py + 4:.1f}" font-size="10" text-anchor="end">{y:g}</text>'
            )
        for n in x_ticks:
            px, _ = self.px(n, 0)
            out.append(
                f'<line x1="{px:.1f}" y1="{y0 + PANEL_H}" x2="{px:.1f}" y2="{y0 + PANEL_H + 4}" '
                f'stroke="{GREY}"/>'
            )
            out.append(
                f'<text x="{px:.1f}" y="{y0 + PANEL_H + 16}" font-size="10" '
                f'text-anchor="middle">{_n(n)}</text>'
            )
        return out

    def line(self, points: Sequence[Point], color: str, dashed: bool) -> list[str]:
        if not points:
            return []
        pts = [self.px(x, y) for x, y in points]
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out = [f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>']
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in pts]
        dy = 13 if dashed else -5  # dashed series label below their points, so pairs stay legible
        for (x, y), (_, value) in zip(pts, points, strict=True):
            out.append(
                f'<text x="{x + 5:.1f}" y="{y + dy:.1f}" font-size="9" fill="{color}">'
                f"{value:.0f}</text>"
            )
        return out


def _legend(x: int, y: int, items: Sequence[tuple[str, str, bool]]) -> list[str]:
    out = []
    for i, (label, color, dashed) in enumerate(items):
        yy = y + 14 * i
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(
            f'<line x1="{x}" y1="{yy}" x2="{x + 22}" y2="{yy}" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{x + 28}" y="{yy + 4}" font-size="10">{escape(label)}</text>')
    return out


def render_svg(results: dict[str, Any]) -> str:
    """Search p50/p95 and serve RSS against size, one tenant (solid) and N tenants (dashed)."""
    runs = results["runs"]
    one = sorted((r for r in runs if r["layout"] == "one-tenant"), key=lambda r: r["n_memories"])
    many = sorted((r for r in runs if r["layout"] != "one-tenant"), key=lambda r: r["n_memories"])
    sizes = sorted({r["n_memories"] for r in runs}) or [1]

    def series(rs: list[dict[str, Any]], pick: str) -> list[Point]:
        out = []
        for r in rs:
            value = r["latency"]["search_limit10"][pick]
            if isinstance(value, int | float) and not math.isnan(value):
                out.append((float(r["n_memories"]), float(value)))
        return out

    def rss(rs: list[dict[str, Any]]) -> list[Point]:
        return [
            (float(r["n_memories"]), float(r["server"]["rss_mb_loaded"]))
            for r in rs
            if r["server"].get("rss_mb_loaded") is not None
        ]

    lat = {
        (layout, pick): series(rs, pick)
        for layout, rs in (("one", one), ("many", many))
        for pick in ("p50_ms", "p95_ms")
    }
    targets = [(float(n), t) for n, t in TARGETS_P95_MS.items() if n in sizes]
    lat_max = max([y for pts in lat.values() for _, y in pts] + [t for _, t in targets] + [1.0])
    rss_pts = {"one": rss(one), "many": rss(many)}
    rss_max = max([y for pts in rss_pts.values() for _, y in pts] + [1.0])
    tenants = many[0]["tenants"] if many else results["config"].get("tenants", 0)

    left = _Panel(LEFT, sizes, lat_max, "search latency (in-process, incl. embedding)", "ms")
    right = _Panel(RIGHT, sizes, rss_max, "memos serve RSS, index loaded", "MiB")
    body: list[str] = []
    body += left.frame(sizes)
    body += left.line(lat[("one", "p50_ms")], BLUE, False)
    body += left.line(lat[("one", "p95_ms")], ORANGE, False)
    body += left.line(lat[("many", "p50_ms")], BLUE, True)
    body += left.line(lat[("many", "p95_ms")], ORANGE, True)
    for x, y in targets:
        px, py = left.px(x, y)
        body.append(
            f'<path d="M{px - 5:.1f},{py - 5:.1f} L{px + 5:.1f},{py + 5:.1f} '
            f'M{px - 5:.1f},{py + 5:.1f} L{px + 5:.1f},{py - 5:.1f}" stroke="{RED}" '
            'stroke-width="2"/>'
        )
    body += right.frame(sizes)
    body += right.line(rss_pts["one"], GREEN, False)
    body += right.line(rss_pts["many"], GREEN, True)
    legend = [
        ("p50, 1 tenant", BLUE, False),
        ("p95, 1 tenant", ORANGE, False),
        (f"p50, {tenants:,} tenants", BLUE, True),
        (f"p95, {tenants:,} tenants", ORANGE, True),
    ]
    body += _legend(LEFT[0] + 8, LEFT[1] + 14, legend)
    body.append(
        f'<text x="{LEFT[0] + 8}" y="{LEFT[1] + 14 + 14 * len(legend) + 4}" font-size="10" '
        f'fill="{RED}">x p95 target</text>'
    )
    body += _legend(
        RIGHT[0] + 8,
        RIGHT[1] + 14,
        [("1 tenant", GREEN, False), (f"{tenants:,} tenants", GREEN, True)],
    )
    machine = results.get("machine", {})
    body.append(
        f'<text x="{W / 2:.0f}" y="{H - 8}" font-size="10" text-anchor="middle" fill="{GREY}">'
        f"memos bench scale, {escape(str(machine.get('date', '')))}, "
        f"{machine.get('cpus', '?')} cores (shared machine: compare ratios, not ms)</text>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif">\n'
        f'<rect width="{W}" height="{H}" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n"
    )


def write_svg(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_svg(results), encoding="utf-8")
