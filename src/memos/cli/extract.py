"""``memos extract``: fine-mode extraction from the shell; nothing is stored.

Messages come from ``--message "role: text"`` (repeatable), ``--file`` (a JSON
list of ``{role, content, chat_time}``) or stdin (that JSON, or one
``role: text`` per line). The call is ``/extract/memory`` through the SDK, on
a server (``--url``) or in-process, so an unconfigured LLM gives the same 50002
either way; the command adds where to configure one, since in-process that is
this shell's environment, not a server's.
"""

from __future__ import annotations

import sys
from typing import IO, Any

import click

from memos.cli import output
from memos.cli.memories import Target, parse_messages, read_messages, with_target
from memos.errors import LLMNotConfigured

ROLES = ("user", "assistant", "system")
HINT_LOCAL = (
    "memos extract runs in-process here, so configure the LLM in this shell, e.g.\n"
    "  export MEMOS_LLM_BACKEND=openai MEMOS_LLM_BASE_URL=http://localhost:11434/v1 "
    "MEMOS_LLM_MODEL=qwen2.5:3b\n"
    "or pass --url to a MemOS server that has one."
)
HINT_SERVER = (
    "the server at {url} has no LLM: restart `memos serve` with MEMOS_LLM_BACKEND=openai, "
    "MEMOS_LLM_BASE_URL (any OpenAI-compatible /v1 endpoint) and MEMOS_LLM_MODEL set."
)


def parse_line(text: str) -> dict[str, Any]:
    """``"assistant: Hi"`` -> a message; text without a known role prefix is the user's."""
    role, sep, rest = text.partition(":")
    if sep and role.strip().lower() in ROLES and rest.strip():
        return {"role": role.strip().lower(), "content": rest.strip()}
    return {"role": "user", "content": text.strip()}


def read_stdin(stream: IO[str]) -> list[dict[str, Any]]:
    """Messages on stdin: a JSON list (or ``{"messages": [...]}``), else ``role: text`` lines."""
    text = stream.read()
    if text.lstrip()[:1] in ("[", "{"):
        return parse_messages(text, "stdin")
    return [parse_line(line) for line in text.splitlines() if line.strip()]


def gather(
    texts: tuple[str, ...], file: IO[str] | None, chat_time: str | None, stdin: IO[str]
) -> list[dict[str, Any]]:
    if texts and file is not None:
        raise click.UsageError("give --message or --file, not both")
    if texts:
        messages = [parse_line(t) for t in texts]
        if chat_time:
            for message in messages:
                message["chat_time"] = chat_time
        return messages
    if file is not None:
        return read_messages(file)
    piped = [] if stdin.isatty() else read_stdin(stdin)
    if not piped:
        raise click.UsageError("give --message, --file, or pipe the messages on stdin")
    return piped


def _sources(item: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    """Which input messages (1-based) an item came from, matched by id or text."""
    found: list[str] = []
    for source in item.get("sources") or []:
        for i, message in enumerate(messages, 1):
            same_id = message.get("message_id") and message["message_id"] == source.get(
                "message_id"
            )
            content = message.get("content")
            same_text = isinstance(content, str) and content[:2000] == source.get("content")
            if same_id or same_text:
                found.append(f"#{i}")
                break
    return ",".join(dict.fromkeys(found)) or "-"


def render(data: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    rows: list[list[str]] = []
    for fact in data.get("memory_detail_list") or []:
        rows.append(
            [
                "memory",
                output.one_line(fact.get("memory_type")),
                _sources(fact, messages),
                output.one_line(fact.get("memory_value")),
            ]
        )
    for pref in data.get("preference_detail_list") or []:
        text = output.one_line(pref.get("preference"))
        if pref.get("reasoning"):
            text += f" (why: {output.one_line(pref['reasoning'])})"
        rows.append(
            [
                "preference",
                output.one_line(pref.get("preference_type")),
                _sources(pref, messages),
                text,
            ]
        )
    if not rows:
        return f"no memories found in {len(messages)} message(s)"
    table = output.table(["KIND", "TYPE", "SOURCES", "MEMORY"], rows)
    return f"{table}\n{len(rows)} memories from {len(messages)} message(s); nothing was stored"


@click.command()
@click.option(
    "--message",
    "-m",
    "texts",
    multiple=True,
    metavar="'ROLE: TEXT'",
    help="A message, e.g. 'user: I moved to Shanghai yesterday' (repeatable; "
    "no role prefix means user).",
)
@click.option(
    "--chat-time",
    default=None,
    help="When the --message lines were said, "
    "e.g. 2025-09-12 08:00 (relative dates resolve against it).",
)
@click.option(
    "--file",
    "file",
    type=click.File("r"),
    default=None,
    help="A JSON list of {role, content, chat_time} messages ('-' for stdin).",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(["memory", "preference"]),
    help="Extract only this kind (repeatable; default both).",
)
@with_target(user_required=False)
def extract(
    target: Target,
    user: str | None,
    texts: tuple[str, ...],
    chat_time: str | None,
    file: IO[str] | None,
    types: tuple[str, ...],
) -> None:
    """Ask the LLM which facts and preferences the messages hold; stores nothing."""
    messages = gather(texts, file, chat_time, sys.stdin)
    try:
        with target.open() as api:
            data = api.extract_memory(messages, list(types) or None, user_id=user)
    except LLMNotConfigured as exc:
        click.echo(f"error {exc.code}: {exc.message}", err=True)
        hint = HINT_SERVER.format(url=target.url) if target.url else HINT_LOCAL
        click.echo(hint, err=True)
        raise SystemExit(1) from None
    for failure in data.get("failed_windows") or []:
        click.echo(
            f"warning: window {failure.get('window', 0) + 1} gave no memories: "
            f"{failure.get('reason')}",
            err=True,
        )
    target.show(data, render(data, messages))
