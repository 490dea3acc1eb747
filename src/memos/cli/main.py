"""``memos``: serve the API and work with memories from the shell."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from memos.cli.bench import bench
from memos.cli.db import db
from memos.cli.extract import extract
from memos.cli.memories import COMMANDS
from memos.cli.transfer import export_cmd, import_cmd
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
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="API server processes behind the one port (default 1; also MEMOS_WORKERS).",
)
@click.option(
    "--task-workers",
    default=None,
    type=click.IntRange(0, 64),
    help="Threads per process running async fine passes (MEMOS_QUEUE__WORKERS, "
    "default 1); 0 leaves them to `memos worker`.",
)
@click.option(
    "--store-url",
    default=None,
    help="The store (MEMOS_STORE_URL): postgresql://... or sqlite:///file.db "
    "(default: SQLite in the data dir).",
)
@click.option(
    "--queue-url",
    default=None,
    help="The task queue (MEMOS_QUEUE_URL): redis://host:6379/0 (default: SQLite in the data dir).",
)
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    log_level: str | None,
    config_file: Path | None,
    workers: int | None,
    task_workers: int | None,
    store_url: str | None,
    queue_url: str | None,
) -> None:
    """Start the REST server (both API dialects) on the configured store.

    Async fine passes run on worker threads inside the server
    (MEMOS_QUEUE__WORKERS, default 1). MEMOS_QUEUE__WORKERS=0 (--task-workers 0)
    leaves that work to separate `memos worker` processes sharing the queue
    (MEMOS_QUEUE_URL). --workers N runs N server processes on one port; with a
    PostgreSQL store (MEMOS_STORE_URL) they need a shared queue URL too.
    """
    import uvicorn

    from memos.api import create_app, server

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "log_level": log_level,
        "workers": workers,
        "store": {"url": store_url},
        "queue": {"url": queue_url},
    }
    if task_workers is not None:
        overrides["queue"]["workers"] = task_workers
    settings = _settings(overrides, config_file)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if settings.workers > 1:
        _serve_processes(settings)
        return
    click.echo(
        f"memos: serving on http://{settings.host}:{settings.port} "
        f"(data: {settings.data_dir}, docs: /docs)",
        err=True,
    )
    server.configure(settings.http.header_timeout_s)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        http=server.GuardedH11Protocol,
    )


def _serve_processes(settings: Settings) -> None:
    """``memos serve --workers N``: N uvicorn processes on one socket.

    Each process builds its own service from the settings resolved here (handed
    down as JSON in the environment), after one check here of what they share.
    """
    import uvicorn

    from memos.api import server
    from memos.errors import MemosError
    from memos.service import MemoryService
    from memos.settings import hand_down
    from memos.store.factory import check_processes, describe

    try:
        check_processes(settings, f"memos serve --workers {settings.workers}")
        MemoryService.preflight(settings)
        where = describe(settings)
    except MemosError as exc:
        raise click.ClickException(exc.message) from None
    if settings.working.enabled:
        logging.getLogger(__name__).warning(
            "working memory is per process: each of the %d server processes keeps its own",
            settings.workers,
        )
    hand_down(settings)
    click.echo(
        f"memos: serving on http://{settings.host}:{settings.port} with "
        f"{settings.workers} processes (store: {where}, docs: /docs)",
        err=True,
    )
    uvicorn.run(
        "memos.api.app:create_app_from_environment",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        http=server.GuardedH11Protocol,
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
    "--store-url",
    default=None,
    help="The store the servers use (MEMOS_STORE_URL; default: SQLite in the data dir).",
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
    store_url: str | None,
    concurrency: int | None,
    log_level: str | None,
    config_file: Path | None,
) -> None:
    """Run the scheduler's async fine passes from the task queue until SIGTERM/Ctrl-C.

    Point it at the server's data dir, or its MEMOS_STORE_URL and
    MEMOS_QUEUE_URL (a PostgreSQL store needs a shared queue), with the same
    embedder and LLM settings. On a stop it lets running tasks finish
    (up to 30 s); a task it could not finish is re-run after the queue's lease.
    """
    import signal
    import threading

    from memos.errors import MemosError
    from memos.service import MemoryService
    from memos.store.factory import check_processes, describe

    settings = _settings(
        {
            "data_dir": data_dir,
            "log_level": log_level,
            "queue": {"url": queue_url},
            "store": {"url": store_url},
        },
        config_file,
    )
    try:
        check_processes(settings, "memos worker")
    except MemosError as exc:
        raise click.ClickException(exc.message) from None
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
        f"task(s) at once (store: {describe(settings)})",
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
cli.add_command(export_cmd)
cli.add_command(import_cmd)
cli.add_command(db)


def main() -> None:
    cli()
