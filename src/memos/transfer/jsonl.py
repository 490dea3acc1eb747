"""The export file: JSON Lines with a header, one record a line and a verifying trailer.

::

    {"created":"2025-06-01T12:00:00+00:00","dims":256,"embed_model":"hash-256",
     "format":"memos-export","vectors":true,"version":1}
    {"create_time":1748779200.0,"cube_id":"alice","owner_id":"alice","record":"cube"}
    {"agent_id":null,...,"record":"memory",...,"vector":[0.1,...]}
    ...
    {"counts":{"cube":1,"edge":0,...},"end":"memos-export","records":42,"sha256":"..."}

Every line is the canonical JSON of its object (keys sorted, no spaces, UTF-8
unescaped), so the trailer's ``sha256`` (over each record line and its
newline, in order) is a checksum of the content, and ``counts`` the records
per kind. A reader refuses a file whose trailer is missing (truncated), whose
checksum or counts differ, or that has lines after the trailer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from memos.errors import InvalidParameter
from memos.store.records import KINDS, Record

FORMAT = "memos-export"
VERSION = 1


class FormatError(InvalidParameter):
    """A file that is not a complete, intact memos export."""


def canonical(obj: Any) -> bytes:
    """The one serialisation the checksum is defined over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Header:
    """The first line: what made the vectors (if the file carries them)."""

    embed_model: str | None
    dims: int | None
    vectors: bool
    created: str = field(default_factory=_now)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "embed_model": self.embed_model,
            "dims": self.dims,
            "vectors": self.vectors,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, obj: Any, name: str) -> Header:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise FormatError(f"{name} is not a memos export (its first line is no header)")
        if obj.get("version") != VERSION:
            raise FormatError(
                f"{name} is a version {obj.get('version')} export; this memos reads version "
                f"{VERSION}: import it with the memos that wrote it, or upgrade"
            )
        dims = obj.get("dims")
        return cls(
            embed_model=obj.get("embed_model"),
            dims=int(dims) if dims is not None else None,
            vectors=bool(obj.get("vectors", True)),
            created=str(obj.get("created", "")),
        )


@dataclass(frozen=True)
class Summary:
    """What the trailer says: records per kind and the checksum."""

    counts: dict[str, int]
    records: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"end": FORMAT, "records": self.records, "counts": self.counts,
                "sha256": self.sha256}


class Digest:
    """Counts and the running checksum of record lines."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.counts = dict.fromkeys(KINDS, 0)
        self.records = 0

    def add(self, line: bytes, kind: str) -> None:
        self._hash.update(line)
        self._hash.update(b"\n")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.records += 1

    def add_record(self, record: Record) -> None:
        self.add(canonical(record), str(record.get("record")))

    def summary(self) -> Summary:
        return Summary(dict(self.counts), self.records, self._hash.hexdigest())


def write(out: IO[bytes], header: Header, records: Iterable[Record]) -> Summary:
    """Write a complete export; returns what its trailer says."""
    out.write(canonical(header.to_json()) + b"\n")
    digest = Digest()
    for rec in records:
        line = canonical(rec)
        out.write(line + b"\n")
        digest.add(line, str(rec["record"]))
    summary = digest.summary()
    out.write(canonical(summary.to_json()) + b"\n")
    return summary


def _parse(line: bytes, name: str, n: int) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        raise FormatError(
            f"{name}: line {n} is not valid JSON; the file is damaged or was cut short: "
            "export it again"
        ) from None


def _trailer(obj: Any, name: str) -> Summary:
    if not isinstance(obj, dict) or obj.get("end") != FORMAT:
        raise FormatError(
            f"{name} ends without its trailer line: it was cut short (an interrupted export "
            "or copy); export it again"
        )
    try:
        return Summary({str(k): int(v) for k, v in obj["counts"].items()}, int(obj["records"]),
                       str(obj["sha256"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise FormatError(f"{name} has a malformed trailer line") from None


def _compare(found: Summary, expected: Summary, name: str, *, counts: bool) -> None:
    if found.records != expected.records or (
        counts and {k: v for k, v in found.counts.items() if v} != {
            k: v for k, v in expected.counts.items() if v}
    ):
        raise FormatError(
            f"{name} holds {found.records} records but its trailer says {expected.records} "
            f"({expected.counts}): the file is damaged; export it again"
        )
    if found.sha256 != expected.sha256:
        raise FormatError(
            f"{name}: checksum mismatch (sha256 {found.sha256[:12]}... but the trailer says "
            f"{expected.sha256[:12]}...): the file was changed or damaged; export it again"
        )


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for n, raw in enumerate(stream, 1):
        line = raw.rstrip(b"\r\n")
        if line:
            yield n, line


class Reader:
    """The records of an export, verified against the trailer as they stream.

    ``header`` is read on construction; iterating yields the records and, at
    the end, raises FormatError unless the trailer matches what was read.
    ``summary`` is set once all records were read and verified.
    """

    def __init__(self, stream: IO[bytes], name: str = "the file") -> None:
        self.name = name
        self._lines = _lines(stream)
        first = next(self._lines, None)
        if first is None:
            raise FormatError(f"{name} is empty")
        self.header = Header.from_json(_parse(first[1], name, first[0]), name)
        self.summary: Summary | None = None

    def __iter__(self) -> Iterator[Record]:
        digest = Digest()
        expected: Summary | None = None
        for n, line in self._lines:
            if expected is not None:
                raise FormatError(f"{self.name}: line {n} follows the trailer; the file is damaged")
            obj = _parse(line, self.name, n)
            if isinstance(obj, dict) and "record" in obj:
                digest.add(line, str(obj["record"]))
                yield obj
            else:
                expected = _trailer(obj, self.name)
        if expected is None:
            raise FormatError(
                f"{self.name} ends without its trailer line: it was cut short (an interrupted "
                "export or copy); export it again"
            )
        found = digest.summary()
        _compare(found, expected, self.name, counts=True)
        self.summary = found


def verify(stream: IO[bytes], name: str = "the file") -> tuple[Header, Summary]:
    """Check a whole file against its trailer without parsing the records (fast).

    Run before an import from a file, so a damaged file is refused before
    anything is written.
    """
    lines = _lines(stream)
    first = next(lines, None)
    if first is None:
        raise FormatError(f"{name} is empty")
    header = Header.from_json(_parse(first[1], name, first[0]), name)
    digest = hashlib.sha256()
    count = 0
    last: bytes | None = None
    for _, line in lines:
        if last is not None:
            digest.update(last)
            digest.update(b"\n")
            count += 1
        last = line
    expected = _trailer(_parse(last, name, count + 2) if last is not None else None, name)
    found = Summary(expected.counts, count, digest.hexdigest())
    _compare(found, expected, name, counts=False)
    return header, expected
