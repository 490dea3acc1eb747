"""``memos``: serve the API and work with memories from the shell."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from memos.cli.bench import bench
from memos.cli.extract import extract
from memos.cli.memories import COMMANDS
from memos.settings import load_settings


@click.group()
@click.version_option(package_name="memos")
def cli() -> None:
    """MemOS: a memory operating system for LLM apps and agents."""


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8000).")
@click.option("--data-dir", default=None, type=click.Path(path_type=Path),
              help="Where the SQLite file lives (default ~/.memos/data).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING ...")
def serve(host: str | None, port: int | None, data_dir: Path | None,
          log_level: str | None) -> None:
    """Start the REST server (both API dialects) on the embedded store."""
    import uvicorn

    from memos.api import create_app

    settings = load_settings(
        {"host": host, "port": port, "data_dir": data_dir, "log_level": log_level}
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    click.echo(f"memos: serving on http://{settings.host}:{settings.port} "
               f"(data: {settings.data_dir}, docs: /docs)", err=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level.lower(), access_log=False)


for _command in COMMANDS:
    cli.add_command(_command)
cli.add_command(extract)
cli.add_command(bench)


def main() -> None:
    cli()
