"""``memos bench``: the LoCoMo recall benchmark and the search-at-scale benchmark."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from memos.bench import BenchError


def _progress(line: str) -> None:
    click.echo(line, err=True)


@click.group()
def bench() -> None:
    """Benchmarks: retrieval quality (locomo) and latency at scale (scale)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@bench.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="LoCoMo JSON (default: the shared locomo_public.json).",
)
@click.option(
    "--url",
    default=None,
    help="Benchmark a running server instead of spawning one on a temp data dir.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the JSON results (default bench/results/locomo.json).",
)
@click.option(
    "--limit-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first N conversations.",
)
def locomo(
    data_path: Path | None, url: str | None, out: Path | None, limit_samples: int | None
) -> None:
    """Evidence recall within 200/500/1000-word budgets, hybrid vs a BM25 baseline."""
    from memos.bench import locomo as lb

    path = data_path or lb.DEFAULT_DATA
    samples = lb.load_samples(path, limit_samples=limit_samples)
    try:
        results = lb.run_locomo(samples, url=url, progress=_progress, data_path=path)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    target = out or lb.DEFAULT_OUT
    lb.write_results(results, target)
    click.echo(lb.format_table(results))
    click.echo(f"results written to {target}")


def _sizes(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        sizes = sorted({int(v.replace("_", "")) for v in value.split(",") if v.strip()})
    except ValueError as exc:
        raise click.BadParameter("a comma-separated list of integers") from exc
    if not sizes or sizes[0] < 1000:
        raise click.BadParameter("sizes start at 1000 memories")
    return sizes


@bench.command()
@click.option(
    "--sizes",
    callback=_sizes,
    default=None,
    help="Comma-separated corpus sizes, each in a fresh data dir [default: 10000,100000,1000000].",
)
@click.option(
    "--n",
    "n_memories",
    type=click.IntRange(min=1000),
    default=None,
    help="One size only (same as --sizes N).",
)
@click.option(
    "--tenants",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Also run each size spread over this many tenants, where each gets at least "
    "100 memories (0: never).",
)
@click.option(
    "--queries",
    type=click.IntRange(min=10),
    default=300,
    show_default=True,
    help="Distinct search queries (LoCoMo questions).",
)
@click.option(
    "--http-queries",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Searches over HTTP against memos serve, per run.",
)
@click.option(
    "--exact-messages",
    type=click.IntRange(min=0),
    default=5_000,
    show_default=True,
    help="Messages embedded with the real model (and timed); the rest get "
    "composed vectors. Set >= N to embed everything for real (slow).",
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="LoCoMo JSON the sentences and queries come from.",
)
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the temporary data dirs go (default: the system temp dir; 1M memories take ~4 GB).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the JSON results (default bench/results/scale.json).",
)
@click.option(
    "--svg",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the chart (default docs/scale.svg).",
)
def scale(
    sizes: list[int] | None,
    n_memories: int | None,
    tenants: int,
    queries: int,
    http_queries: int,
    exact_messages: int,
    data_path: Path | None,
    work_dir: Path | None,
    out: Path | None,
    svg: Path | None,
) -> None:
    """Search latency, ingest, index build, disk and RSS from 10k to 1M memories."""
    from memos.bench import locomo as lb
    from memos.bench import scale as sb
    from memos.bench import scale_report as sr

    if sizes is None:
        sizes = [n_memories] if n_memories is not None else list(sb.DEFAULT_SIZES)
    elif n_memories is not None:
        raise click.UsageError("give --sizes or --n, not both")
    try:
        results = sb.run_scale(
            sizes,
            tenants=tenants,
            n_queries=queries,
            http_queries=http_queries,
            exact_messages=exact_messages,
            data_path=data_path or lb.DEFAULT_DATA,
            progress=_progress,
            work_dir=work_dir,
        )
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    target = out or sb.DEFAULT_OUT
    target.parent.mkdir(parents=True, exist_ok=True)
    results["table_markdown"] = sr.format_table(results)
    target.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    chart = svg or sb.DEFAULT_SVG
    sr.write_svg(results, chart)
    click.echo(results["table_markdown"])
    click.echo(f"results written to {target}, chart to {chart}")
