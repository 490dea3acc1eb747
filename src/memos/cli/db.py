"""``memos db``: the PostgreSQL store's schema version, up and down.

The SQLite store and every server migrate forward on their own at start; this
command is for the way back (a downgrade before rolling back a release) and for
looking at where a database stands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import psycopg

NEEDS = "the PostgreSQL store needs: pip install 'memos[postgres]'"


def _connect(store_url: str) -> psycopg.Connection[tuple[Any, ...]]:
    try:
        import psycopg
    except ImportError:
        raise click.ClickException(NEEDS) from None
    try:
        return psycopg.connect(store_url, autocommit=True)
    except psycopg.Error as exc:
        raise click.ClickException(f"cannot connect to the store: {exc}") from None


@click.group()
def db() -> None:
    """The PostgreSQL store's schema: status and migrations."""


@db.command("status")
@click.option("--store-url", envvar="MEMOS_STORE_URL", required=True, metavar="URL",
              help="postgresql://... (also MEMOS_STORE_URL).")
def status(store_url: str) -> None:
    """Applied migrations and the newest one this release knows."""
    from memos.store.postgres.schema import HEAD, applied

    with _connect(store_url) as conn:
        done = applied(conn)
    click.echo(f"applied: {', '.join(done) or '(none)'}")
    click.echo(f"this release: {HEAD}")


@db.command("migrate")
@click.option("--store-url", envvar="MEMOS_STORE_URL", required=True, metavar="URL",
              help="postgresql://... (also MEMOS_STORE_URL).")
@click.option("--to", "target", default=None,
              help="A migration name (default: the newest); 'base' removes every table.")
def migrate_cmd(store_url: str, target: str | None) -> None:
    """Move the schema up or down to --to (stop every server and worker first
    when going down: a downgrade drops what newer migrations added)."""
    from memos.store.postgres.schema import HEAD, migrate

    with _connect(store_url) as conn:
        try:
            steps = migrate(conn, None if target == "base" else (target or HEAD))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo("\n".join(steps) if steps else "already there")
