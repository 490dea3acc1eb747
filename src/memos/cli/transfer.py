"""``memos export`` / ``memos import``: move a tenant, or everything, between stores.

``memos export --user alice out.jsonl`` streams alice's cubes out of the
configured store (the SQLite file in the data dir, or the store
``--store-url`` / MEMOS_STORE_URL names) as verifiable JSON Lines (``memos.transfer.jsonl``);
``memos import out.jsonl --store-url postgresql://...`` writes them into
another store with every id, version, time and usage count kept, then exports
the imported cubes again and checks they come out with the same checksum.
``--format memcube`` writes the seed's MemCube directory instead (export only).

Importing a file twice adds nothing (records already there are skipped); a
cube owned by another user in the target is refused. Vectors travel in the
file unless ``--no-vectors``; the importer embeds what is missing with the
configured embedder, which must be the one that made the vectors it keeps.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any, TypeVar, cast
from urllib.parse import quote

import click

from memos.domain.models import MemoryItem, cube_name
from memos.embedders import build_embedder
from memos.embedders.base import Embedder, Vectors
from memos.errors import ConfigError, MemosError, NotFound, UserNotFound
from memos.settings import Settings, load_settings
from memos.store import factory
from memos.store.base import MemoryStore
from memos.store.records import Record
from memos.transfer import jsonl, memcube

F = TypeVar("F", bound=Callable[..., None])
PROGRESS_EVERY_S = 2.0


def _settings(data_dir: Path | None, store_url: str | None,
              config_file: Path | None) -> Settings:
    """Settings with the flags applied: ``--store-url`` is ``store.url`` (MEMOS_STORE_URL)."""
    return load_settings({"data_dir": data_dir, "store": {"url": store_url}},
                         config_file=config_file)


def _existing_store(settings: Settings) -> MemoryStore:
    """The store to export from; a SQLite file that is not there is not created."""
    if factory.store_kind(settings.store.url) == "sqlite":
        path = factory.sqlite_path(settings)
        if not path.exists():
            raise NotFound(f"no memos data at {path}: give --data-dir or --store-url of a store")
    return factory.build_store(settings, "unknown")


def _errors(func: F) -> F:
    """Our errors become ``error <code>: <message>`` on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> None:
        try:
            func(**kwargs)
        except MemosError as exc:
            click.echo(f"error {exc.code}: {exc.message}", err=True)
            raise SystemExit(1) from None

    return cast(F, wrapper)


def _store_options(func: F) -> F:
    options = [
        click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                     help="The data dir of the SQLite store (default: the configured one)."),
        click.option("--store-url", default=None, metavar="URL",
                     help="A PostgreSQL store (postgresql://...) or sqlite:///path/memos.db "
                     "(also MEMOS_STORE_URL)."),
        click.option("--config", "config_file", default=None,
                     type=click.Path(path_type=Path, dir_okay=False),
                     help="A TOML or JSON settings file (also MEMOS_CONFIG)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class Progress:
    """Counts records as they pass and reports the rate on stderr now and then."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.count = 0
        self.started = time.monotonic()
        self._next = self.started + PROGRESS_EVERY_S

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def rate(self) -> float:
        return self.count / max(self.seconds, 1e-9)

    def wrap(self, stream: Iterable[Record]) -> Iterator[Record]:
        for rec in stream:
            self.count += 1
            if time.monotonic() >= self._next:
                self._next = time.monotonic() + PROGRESS_EVERY_S
                click.echo(f"memos {self.verb}: {self.count:,} records "
                           f"({self.rate():,.0f} records/s)", err=True)
            yield rec


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {kind}" for kind, n in counts.items() if n)


# ------------------------------------------------------------------ export
def _select(store: MemoryStore, user: str | None, cube: str | None, everything: bool) -> list[str]:
    if [user is not None, cube is not None, everything].count(True) != 1:
        raise click.UsageError("give exactly one of --user U, --cube C or --all")
    found = sorted(store.cubes())
    if cube is not None:
        if store.cube_owner(cube) is not None:
            return [cube]
        # a named cube is keyed in its owner's namespace; its bare name works when unique
        named = [c for c, _ in found if cube_name(c) == cube]
        if len(named) != 1:
            raise NotFound(f"no single cube {cube!r} in the store; use --user to pick by owner")
        return named
    if user is not None:
        mine = [c for c, owner in found if owner == user]
        if not mine:
            raise UserNotFound(f"user {user!r} owns no cube in the store")
        return mine
    if not found:
        raise NotFound("the store holds no cubes")
    return [c for c, _ in found]


def _vector_model(store: MemoryStore, cube_ids: list[str]) -> tuple[str | None, int | None]:
    """(model, dims) of the first stored vector: a cube's first memory follows its record."""
    for cube_id in cube_ids:
        stream = store.export_cube(cube_id, vectors=True)
        try:
            for rec in islice(stream, 2):
                if rec["record"] == "memory" and "vector" in rec:
                    return rec.get("model"), len(rec["vector"])
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
    return store.get_meta("embed_model"), None


@contextlib.contextmanager
def _output(out: str) -> Iterator[IO[bytes]]:
    """stdout for ``-``; else a file written beside OUT and renamed when complete."""
    if out == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(out)
    part = path.with_name(path.name + ".partial")
    try:
        with _open_binary(part, "wb", gz=path.suffix == ".gz") as fh:
            yield fh
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


@click.command("export")
@click.argument("out")
@click.option("--user", default=None, help="Export every cube this user owns.")
@click.option("--cube", default=None, help="Export this one cube.")
@click.option("--all", "everything", is_flag=True, help="Export every cube of the store.")
@click.option("--no-vectors", is_flag=True,
              help="Leave the vectors out (a third of the size; the import embeds again).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "memcube"]), default="jsonl",
              show_default=True, help="jsonl: lossless, for memos import (OUT '-' is stdout; "
              "'.gz' compresses); memcube: the seed's MemCube directory (export only).")
@_store_options
@_errors
def export_cmd(out: str, user: str | None, cube: str | None, everything: bool,
               no_vectors: bool, fmt: str, data_dir: Path | None, store_url: str | None,
               config_file: Path | None) -> None:
    """Export memories, versions, edges, messages and tasks to OUT.

    One user's cubes (--user), one cube (--cube) or everything (--all), from
    the SQLite store in the data dir or the store --store-url names.
    """
    settings = _settings(data_dir, store_url, config_file)
    store = _existing_store(settings)
    vectors = not no_vectors
    try:
        cube_ids = _select(store, user, cube, everything)
        model, dims = _vector_model(store, cube_ids)
        progress = Progress("export")
        if fmt == "memcube":
            _export_memcube(store, cube_ids, Path(out), single=cube is not None,
                            vectors=vectors, model=model, progress=progress)
            return
        header = jsonl.Header(embed_model=model, dims=dims if vectors else None,
                              vectors=vectors)
        records = progress.wrap(
            rec for c in cube_ids for rec in store.export_cube(c, vectors=vectors)
        )
        with _output(out) as fh:
            summary = jsonl.write(fh, header, records)
    finally:
        store.close()
    click.echo(
        f"exported {len(cube_ids)} cube(s) to {out}: {_counts(summary.counts)} "
        f"({summary.records:,} records in {progress.seconds:.1f} s, "
        f"{progress.rate():,.0f} records/s); sha256 {summary.sha256}",
        err=out == "-",
    )


def _export_memcube(store: MemoryStore, cube_ids: list[str], out: Path, *, single: bool,
                    vectors: bool, model: str | None, progress: Progress) -> None:
    for cube_id in cube_ids:
        target = out if single else out / quote(cube_id, safe="")
        dumped = memcube.write(target, progress.wrap(store.export_cube(cube_id, vectors=vectors)),
                               embed_model=model)
        left = f"; not in a MemCube: {_counts(dumped.omitted)}" if dumped.omitted else ""
        shape = f", vectors {dumped.nodes}x{dumped.dims}" if dumped.dims else ""
        click.echo(f"dumped cube {cube_id!r} to {target}: {dumped.nodes} nodes, "
                   f"{dumped.edges} edges{shape}{left}")
    click.echo(f"{progress.count:,} records in {progress.seconds:.1f} s")


# ------------------------------------------------------------------ import
def _open_input(name: str) -> IO[bytes]:
    if name == "-":
        return sys.stdin.buffer
    path = Path(name)
    if not path.is_file():
        raise NotFound(f"no file {name}")
    return _open_binary(path, "rb", gz=path.suffix == ".gz")


def _open_binary(path: Path, mode: str, *, gz: bool) -> IO[bytes]:
    if gz:
        return cast(IO[bytes], gzip.open(path, mode))
    return cast(IO[bytes], path.open(mode))


def embed_memories(embedder: Embedder) -> Callable[[list[MemoryItem]], Vectors]:
    """Vectors of the text the service embeds for a memory (its value)."""
    return lambda items: embedder.embed([m.value for m in items])


class _Strip:
    """Memory records without their vectors (to embed again), and the checksum of
    the records as they then are."""

    def __init__(self) -> None:
        self.digest = jsonl.Digest()

    def __call__(self, stream: Iterable[Record]) -> Iterator[Record]:
        for rec in stream:
            if rec.get("record") == "memory":
                rec = {k: v for k, v in rec.items() if k not in ("vector", "model")}
            self.digest.add_record(rec)
            yield rec


def _cube_ids(stream: Iterable[Record], into: list[str]) -> Iterator[Record]:
    for rec in stream:
        if rec.get("record") == "cube":
            into.append(str(rec.get("cube_id")))
        yield rec


@click.command("import")
@click.argument("file")
@click.option("--reembed", is_flag=True,
              help="Embed every memory again with the configured embedder (not the file's "
              "vectors); needed when the file's vectors come from another embedder.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Export the imported cubes again and compare checksums.")
@_store_options
@_errors
def import_cmd(file: str, reembed: bool, verify: bool, data_dir: Path | None,
               store_url: str | None, config_file: Path | None) -> None:
    """Import an export FILE ('-': stdin) into the configured store, or --store-url.

    Ids, versions, times and usage are kept; records already in the store are
    skipped, so a second run (or one after an interruption) adds nothing twice.
    """
    settings = _settings(data_dir, store_url, config_file)
    if file != "-":  # a damaged file is refused before anything is written
        with _open_input(file) as fh:
            jsonl.verify(fh, file)
    embedder = build_embedder(settings.embedder)
    with _open_input(file) as fh:
        reader = jsonl.Reader(fh, "stdin" if file == "-" else file)
        strip = _Strip() if reembed and reader.header.vectors else None
        model = reader.header.embed_model
        if reader.header.vectors and strip is None and model not in (None, embedder.name):
            raise ConfigError(
                f"the vectors in {file} were made by {model!r} but {embedder.name!r} is "
                "configured: configure that embedder (MEMOS_EMBEDDER__KIND ...) or pass "
                "--reembed to embed every memory again"
            )
        store = factory.open_store(settings, embedder.name)  # refuses another embedder's store
        try:
            line = _import(store, reader, embedder, strip=strip, verify=verify)
        except jsonl.FormatError as exc:
            if file != "-":
                raise
            raise jsonl.FormatError(
                f"{exc.message}. The records before that point were imported; importing "
                "an intact export completes it (nothing is added twice)"
            ) from None
        finally:
            store.close()
    click.echo(f"imported {file}: {line}")


def _import(store: MemoryStore, reader: jsonl.Reader, embedder: Embedder, *,
            strip: _Strip | None, verify: bool) -> str:
    """Import the reader's records; returns the summary line."""
    progress = Progress("import")
    cube_ids: list[str] = []
    stream: Iterable[Record] = _cube_ids(reader, cube_ids)
    if strip is not None:
        stream = strip(stream)
    counts = store.import_records(progress.wrap(stream), embed=embed_memories(embedder))
    skipped = counts.pop("skipped", 0)
    line = _counts(counts) or "nothing new"
    if skipped:
        line += f"; {skipped:,} records already there, skipped"
    line += (f" ({progress.count:,} records in {progress.seconds:.1f} s, "
             f"{progress.rate():,.0f} records/s)")
    expected = strip.digest.summary() if strip is not None else reader.summary
    if verify and expected is not None:  # (the reader sets its summary once all is verified)
        _verify(store, cube_ids, expected, vectors=reader.header.vectors and strip is None)
        line += f"; verified: sha256 {expected.sha256}"
    return line


def _verify(store: MemoryStore, cube_ids: list[str], expected: jsonl.Summary, *,
            vectors: bool) -> None:
    digest = jsonl.Digest()
    for cube_id in cube_ids:
        for rec in store.export_cube(cube_id, vectors=vectors):
            digest.add_record(rec)
    found = digest.summary()
    if found.sha256 != expected.sha256:
        raise MemosError(
            f"imported, but the target's copy differs from the file: {_counts(found.counts)} "
            f"against {_counts(expected.counts)} in the file (sha256 {found.sha256[:12]}... "
            f"against {expected.sha256[:12]}...). The target held other data in these cubes "
            "before; export them with `memos export --cube` to compare"
        )
