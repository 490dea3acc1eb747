"""``memos``: serve the API and work with memories from the shell."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from memos.cli.bench import bench
from memos.cli.extract import extract
from memos.cli.memories import COMMANDS
from memos.errors import ConfigError
from memos.settings import Settings, load_settings


@click.group()
@click.version_option(package_name="memos")
def cli() -> None:
    """MemOS: a memory operating system for LLM apps and agents."""


def _settings(overrides: dict[str, Any], config_file: Path | None) -> Settings:
    try:
        return load_settings(overrides, config_file=config_file)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8000).")
@click.option(
    "--data-dir",
    default=None,
    type=click.Path(path_type=Path),
    help="Where the SQLite file lives (default ~/.memos/data).",
)
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING ...")
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A TOML or JSON settings file (also MEMOS_CONFIG); env and flags win over it.",
)
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    log_level: str | None,
    config_file: Path | None,
) -> None:
    """Start the REST server (both API dialects) on the embedded store.

    Async fine passes run on worker threads inside the server
    (MEMOS_QUEUE__WORKERS, default 1). MEMOS_QUEUE__WORKERS=0 leaves that work
    to separate `memos worker` processes sharing the queue (MEMOS_QUEUE_URL).
    """
    import uvicorn

    from memos.api import create_app

    settings = _settings(
        {"host": host, "port": port, "data_dir": data_dir, "log_level": log_level}, config_file
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    click.echo(
        f"memos: serving on http://{settings.host}:{settings.port} "
        f"(data: {settings.data_dir}, docs: /docs)",
        err=True,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@cli.command()
@click.option(
    "--data-dir",
    default=None,
    type=click.Path(path_type=Path),
    help="The data dir the server uses (default ~/.memos/data).",
)
@click.option(
    "--queue-url",
    default=None,
    help="The task queue (default: SQLite in the data dir; or redis://host:6379/0).",
)
@click.option(
    "--concurrency",
    default=None,
    type=click.IntRange(1, 64),
    help="Tasks run at once (default MEMOS_QUEUE__WORKERS, at least 1).",
)
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING ...")
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A TOML or JSON settings file (also MEMOS_CONFIG); env and flags win over it.",
)
def worker(
    data_dir: Path | None,
    queue_url: str | None,
    concurrency: int | None,
    log_level: str | None,
    config_file: Path | None,
) -> None:
    """Run the scheduler's async fine passes from the task queue until SIGTERM/Ctrl-C.

    Point it at the server's data dir (and MEMOS_QUEUE_URL when the queue is
    Redis) with the same LLM settings. On a stop it lets running tasks finish
    (up to 30 s); a task it could not finish is re-run after the queue's lease.
    """
    import signal
    import threading

    from memos.errors import MemosError
    from memos.service import MemoryService

    settings = _settings(
        {"data_dir": data_dir, "log_level": log_level, "queue": {"url": queue_url}}, config_file
    )
    if settings.llm.backend == "none":
        raise click.ClickException(
            "memos worker runs fine passes and needs an LLM: set MEMOS_LLM_BACKEND "
            "(openai with MEMOS_LLM_BASE_URL and MEMOS_LLM_MODEL, or local)"
        )
    threads = concurrency or max(1, settings.queue.workers)
    settings = settings.model_copy(
        update={"queue": settings.queue.model_copy(update={"workers": threads})}
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        svc = MemoryService.open(settings, run_workers=False)
    except MemosError as exc:
        raise click.ClickException(exc.message) from None
    if svc.refiner is None:
        svc.close()
        raise click.ClickException("memos worker needs an LLM; none could be built")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():  # a second signal: leave now; unfinished tasks re-run later
            click.echo("memos worker: stopping now", err=True)
            os._exit(1)
        click.echo("memos worker: stopping after running tasks (again to quit now)", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    svc.scheduler.start_workers()
    running = svc.scheduler.worker
    click.echo(
        f"memos worker: {running.worker_id if running else '?'} running {threads} "
        f"task(s) at once (data: {settings.data_dir})",
        err=True,
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        svc.close()
    click.echo("memos worker: stopped", err=True)


for _command in COMMANDS:
    cli.add_command(_command)
cli.add_command(extract)
cli.add_command(bench)


def main() -> None:
    cli()
