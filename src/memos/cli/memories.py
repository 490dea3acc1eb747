"""``memos add|search|get|delete|messages``: the SDK on the command line.

Each command opens a :class:`memos.sdk.MemoryAPI` (in-process on a data dir,
or a server with ``--url``), makes one call and prints its ``data``: as an
aligned table, or as JSON with ``--json``. Errors print ``error <code>:
<message>`` on stderr and exit 1.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import click

from memos.cli import output
from memos.errors import InvalidParameter, MemosError
from memos.sdk import MemoryAPI, MemOS, MemOSClient

F = TypeVar("F", bound=Callable[..., None])


@dataclass(frozen=True)
class Target:
    """Where the memories live: a server URL or a local data dir."""

    url: str | None
    data_dir: Path | None
    api_key: str | None
    as_json: bool

    def open(self) -> MemoryAPI:
        if self.url:
            return MemOSClient(self.url, api_key=self.api_key)
        return MemOS(data_dir=self.data_dir)

    def show(self, data: Any, text: str) -> None:
        if self.as_json:
            output.emit_json(data)
        else:
            click.echo(text)


def common(func: F) -> F:
    """Add --user/--url/--data-dir/--api-key/--json and turn MemosError into exit 1."""
    return with_target(user_required=True)(func)


def with_target(*, user_required: bool) -> Callable[[F], F]:
    """``common`` with --user required or optional (``extract`` needs no user)."""
    return functools.partial(_with_target, user_required=user_required)


def _with_target(func: F, *, user_required: bool) -> F:
    @functools.wraps(func)
    def wrapper(url: str | None, data_dir: Path | None, api_key: str | None,
                as_json: bool, **kwargs: Any) -> None:
        if url and data_dir:
            raise click.UsageError("give --url or --data-dir, not both")
        try:
            func(target=Target(url, data_dir, api_key, as_json), **kwargs)
        except MemosError as exc:
            click.echo(f"error {exc.code}: {exc.message}", err=True)
            raise SystemExit(1) from None

    user_help = "The user id whose memories to use." if user_required else (
        "The user the call is made for (optional).")
    options = [
        click.option("--user", "user", required=user_required, default=None, help=user_help),
        click.option("--url", default=None, metavar="URL",
                     help="Talk to a MemOS server (e.g. http://127.0.0.1:8000)."),
        click.option("--data-dir", default=None, type=click.Path(path_type=Path),
                     help="Work in-process on this data dir (default: the configured one)."),
        click.option("--api-key", default=None,
                     help="Sent as 'Authorization: Token ...' with --url."),
        click.option("--json", "as_json", is_flag=True, help="Print the raw data as JSON."),
    ]
    decorated: Callable[..., None] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return cast(F, decorated)


def parse_json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParameter(f"{what} is not valid JSON: {exc}") from None


def parse_filter(text: str | None) -> dict[str, Any] | None:
    value = parse_json(text, "--filter")
    if value is not None and not isinstance(value, dict):
        raise InvalidParameter("--filter must be a JSON object")
    return value


def read_messages(file: IO[str]) -> list[dict[str, Any]]:
    return parse_messages(file.read(), f"--file {file.name}")


def parse_messages(text: str, what: str) -> list[dict[str, Any]]:
    """A JSON list of message objects (or ``{"messages": [...]}``) from ``text``."""
    value = parse_json(text, what)
    if isinstance(value, dict) and "messages" in value:
        value = value["messages"]
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise InvalidParameter(f"{what} must hold a JSON list of message objects")
    return value


@click.command()
@click.argument("text", required=False)
@click.option("--conversation", required=True, help="Conversation id the messages belong to.")
@click.option("--role", default="user", show_default=True,
              type=click.Choice(["user", "assistant", "system", "tool"]))
@click.option("--chat-time", default=None, help="When it was said, e.g. 2025-01-31 09:00.")
@click.option("--message-id", default=None, help="Your id for the message.")
@click.option("--file", "file", type=click.File("r"), default=None,
              help="A JSON list of messages to add instead of TEXT ('-' for stdin).")
@click.option("--tag", "tags", multiple=True, help="Tag the memories (repeatable).")
@click.option("--agent", default=None, help="Agent id.")
@click.option("--app", default=None, help="App id.")
@common
def add(target: Target, user: str, text: str | None, conversation: str, role: str,
        chat_time: str | None, message_id: str | None, file: IO[str] | None,
        tags: tuple[str, ...], agent: str | None, app: str | None) -> None:
    """Add TEXT as one message (or --file messages) and extract its memories."""
    if (text is None) == (file is None):
        raise click.UsageError("give the message TEXT or --file, exactly one")
    if file is not None:
        messages = read_messages(file)
    else:
        message: dict[str, Any] = {"role": role, "content": text}
        if chat_time:
            message["chat_time"] = chat_time
        if message_id:
            message["message_id"] = message_id
        messages = [message]
    with target.open() as api:
        data = api.add_message(messages, user, conversation, agent_id=agent, app_id=app,
                               tags=list(tags) or None)
    target.show(data, f"added {len(messages)} message(s) to {user}/{conversation}: "
                      f"task {data.get('task_id')} {data.get('status')}")


@click.command()
@click.argument("query")
@click.option("--conversation", default=None, help="Favour memories of this conversation.")
@click.option("--limit", type=int, default=None, help="At most N memories (1-25, default 9).")
@click.option("--relativity", type=float, default=None,
              help="Minimum relevance 0..1 (0 returns everything ranked).")
@click.option("--filter", "filter_", default=None, metavar="JSON", help="A cloud filter object.")
@click.option("--full-ids", is_flag=True, help="Show whole memory ids.")
@common
def search(target: Target, user: str, query: str, conversation: str | None, limit: int | None,
           relativity: float | None, filter_: str | None, full_ids: bool) -> None:
    """Search the user's memories for QUERY."""
    flt = parse_filter(filter_)
    with target.open() as api:
        data = api.search_memory(query, user, conversation_id=conversation, filter=flt,
                                 memory_limit_number=limit, relativity=relativity)
    hits = data.get("memory_detail_list") or []
    if not hits:
        target.show(data, "no memories found")
        return
    target.show(data, output.memory_table(hits, scored=True, full_ids=full_ids))


@click.command()
@click.option("--page", type=int, default=None, help="Page number (default 1).")
@click.option("--size", type=int, default=None, help="Memories per page (1-50, default 10).")
@click.option("--filter", "filter_", default=None, metavar="JSON", help="A cloud filter object.")
@click.option("--full-ids", is_flag=True, help="Show whole memory ids.")
@common
def get(target: Target, user: str, page: int | None, size: int | None, filter_: str | None,
        full_ids: bool) -> None:
    """List the user's memories, newest first, one page at a time."""
    flt = parse_filter(filter_)
    with target.open() as api:
        data = api.get_memory(user, page=page, size=size, filter=flt)
    items = data.get("memory_detail_list") or []
    footer = (f"page {data.get('current')}/{data.get('pages')}, "
              f"{data.get('total')} memories in all")
    body = output.memory_table(items, scored=False, full_ids=full_ids) if items else "no memories"
    target.show(data, f"{body}\n{footer}")


@click.command()
@click.argument("memory_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Delete every memory of the user.")
@click.option("--yes", is_flag=True, help="Do not ask before deleting everything.")
@common
def delete(target: Target, user: str, memory_ids: tuple[str, ...], everything: bool,
           yes: bool) -> None:
    """Delete memories by full id (see --full-ids or --json), or --all of them."""
    if bool(memory_ids) == everything:
        raise click.UsageError("give memory IDs or --all, exactly one")
    if everything and not yes:
        click.confirm(f"delete ALL memories of user {user!r}?", abort=True)
    with target.open() as api:
        if everything:
            data = api.delete_memory(user_id=user)
        else:
            data = api.delete_memory(memory_ids=list(memory_ids), user_ids=[user])
    target.show(data, f"deleted {data.get('deleted_count')} memories")


@click.command()
@click.option("--conversation", required=True, help="Conversation id.")
@click.option("--limit", type=int, default=None, help="At most N messages (1-50, default 6).")
@common
def messages(target: Target, user: str, conversation: str, limit: int | None) -> None:
    """Show the latest raw messages of one conversation."""
    with target.open() as api:
        data = api.get_message(user, conversation, message_limit_number=limit)
    found = data.get("message_detail_list") or []
    target.show(data, output.message_table(found) if found else "no messages")


COMMANDS = [add, search, get, delete, messages]
