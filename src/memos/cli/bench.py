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
@click.option("--data", "data_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="LoCoMo JSON (default: the shared locomo_public.json).")
@click.option("--url", default=None,
              help="Benchmark a running server instead of spawning one on a temp data dir.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where to write the JSON results (default bench/results/locomo.json).")
@click.option("--limit-samples", type=click.IntRange(min=1), default=None,
              help="Only the first N conversations.")
def locomo(data_path: Path | None, url: str | None, out: Path | None,
           limit_samples: int | None) -> None:
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


@bench.command()
@click.option("--n", "n_memories", type=click.IntRange(min=1000), default=100_000,
              show_default=True, help="Memories in the one benchmark tenant.")
@click.option("--queries", type=click.IntRange(min=10), default=300, show_default=True,
              help="Distinct search queries (LoCoMo questions).")
@click.option("--exact-messages", type=click.IntRange(min=0), default=5_000, show_default=True,
              help="Messages embedded with the real model (and timed); the rest get "
                   "composed vectors. Set >= N to embed everything for real (slow).")
@click.option("--data", "data_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="LoCoMo JSON the sentences and queries come from.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where to write the JSON results (default bench/results/scale.json).")
def scale(n_memories: int, queries: int, exact_messages: int, data_path: Path | None,
          out: Path | None) -> None:
    """Search latency, ingest rate and RSS with one tenant of N memories."""
    from memos.bench import locomo as lb
    from memos.bench import scale as sb

    try:
        results = sb.run_scale(
            n_memories,
            n_queries=queries,
            exact_messages=exact_messages,
            data_path=data_path or lb.DEFAULT_DATA,
            progress=_progress,
        )
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    target = out or sb.DEFAULT_OUT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    click.echo(sb.format_table(results))
    click.echo(f"results written to {target}")
