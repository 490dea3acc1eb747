"""A cube as the seed's MemCube directory (``GeneralMemCube.dump`` layout), export only.

::

    <dir>/config.json            the MemCube config: user_id, cube_id, text_mem ...
    <dir>/textual_memory.json    {"nodes": [...], "edges": [...]}: the tree-memory dump
    <dir>/vectors.safetensors    "embedding": float32 (nodes, dims), row i = nodes[i]

Nodes have the shape upstream's ``/product`` lists use (``{id, memory,
metadata}``, see ``memos.wire.buckets``), every status included (it is in
``metadata.status``). Upstream keeps each node's vector in
``metadata.embedding``; here they sit in one safetensors tensor instead, a
format that holds numbers only (no pickle: nothing in the dump executes code
when loaded). Versions, raw messages and tasks are not part of a MemCube: the
JSON Lines export carries everything.

Written as the records stream: nodes go to the JSON file one at a time and
vectors to a scratch file, so a large cube never sits in memory.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from memos.domain.models import MemoryItem
from memos.errors import InvalidParameter
from memos.store import records, rows
from memos.store.records import Record
from memos.wire.buckets import BUCKET_TYPES, RENDER
from memos.wire.render import iso

CONFIG = "config.json"
TEXTUAL = "textual_memory.json"
VECTORS = "vectors.safetensors"
TENSOR = "embedding"


@dataclass(frozen=True)
class Dumped:
    cube_id: str
    nodes: int
    edges: int
    dims: int | None
    omitted: dict[str, int]  # records a MemCube has no place for (versions, messages, tasks)


def _node(item: MemoryItem) -> dict[str, Any]:
    bucket = next(b for b, types in BUCKET_TYPES.items() if item.memory_type in types)
    node = RENDER[bucket](item, None)
    node.pop("ref_id", None)
    return node


class _Vectors:
    """Rows appended to a scratch file, then framed as a safetensors file."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self._out: IO[bytes] = scratch.open("wb")
        self.rows = 0
        self.dims: int | None = None

    def add(self, vector: list[float]) -> None:
        vec = np.asarray(vector, dtype="<f4")
        if self.dims is None:
            self.dims = len(vec)
        elif len(vec) != self.dims:
            raise InvalidParameter(f"vectors of {len(vec)} and {self.dims} dimensions in one cube")
        self._out.write(vec.tobytes())
        self.rows += 1

    def finish(self, path: Path, metadata: dict[str, str]) -> None:
        """Write ``path`` in the safetensors layout: u64 header size, JSON header, data."""
        self._out.close()
        dims = self.dims or 0
        header = {
            "__metadata__": metadata,
            TENSOR: {"dtype": "F32", "shape": [self.rows, dims],
                     "data_offsets": [0, self.rows * dims * 4]},
        }
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
        with path.open("wb") as out, self.scratch.open("rb") as data:
            out.write(struct.pack("<Q", len(raw)))
            out.write(raw)
            shutil.copyfileobj(data, out)
        self.scratch.unlink()
        _check(path, self.rows, dims)

    def discard(self) -> None:
        self._out.close()
        self.scratch.unlink(missing_ok=True)


def _check(path: Path, n: int, dims: int) -> None:
    """Read the header back with safetensors itself, so a reader is sure to accept it."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        shape = f.get_slice(TENSOR).get_shape()
    if list(shape) != [n, dims]:
        raise RuntimeError(f"{path} came out with shape {shape}, not {[n, dims]}")


def write(directory: Path, stream: Iterable[Record], *, embed_model: str | None) -> Dumped:
    """Dump one cube's records (``export_cube``) as a MemCube directory."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise InvalidParameter(f"{directory} is not empty; give a new directory for the MemCube")
    vectors = _Vectors(directory / (VECTORS + ".part"))
    cube: Record | None = None
    nodes = edges = 0
    omitted: dict[str, int] = {}
    with_vectors: bool | None = None
    try:
        with (directory / TEXTUAL).open("w", encoding="utf-8") as out:
            out.write('{"nodes": [')
            section = "nodes"
            for rec in stream:
                kind = rec["record"]
                if kind == "cube":
                    cube = rec
                elif kind == "memory":
                    has = "vector" in rec
                    if with_vectors is not None and has != with_vectors:
                        raise InvalidParameter("some memories of the cube have no vector")
                    with_vectors = has
                    out.write(("\n" if nodes == 0 else ",\n") + json.dumps(
                        _node(records.memory_item(rec)), ensure_ascii=False))
                    nodes += 1
                    if has:
                        vectors.add(rec["vector"])
                elif kind == "edge":
                    if section == "nodes":
                        out.write('\n], "edges": [')
                        section = "edges"
                    out.write(("\n" if edges == 0 else ",\n") + json.dumps({
                        "source": rec["src_id"], "target": rec["dst_id"], "type": rec["kind"],
                        "created_at": iso(rows.dt(rec["create_time"])),
                    }, ensure_ascii=False))
                    edges += 1
                else:
                    omitted[kind] = omitted.get(kind, 0) + 1
            out.write('\n], "edges": [\n]}\n' if section == "nodes" else "\n]}\n")
        if cube is None:
            raise InvalidParameter("the stream holds no cube record")
        if with_vectors:
            vectors.finish(directory / VECTORS, {
                "format": "memos-memcube", "rows": f"{TEXTUAL} nodes, in order",
                "embed_model": embed_model or "unknown",
            })
        else:
            vectors.discard()
    except BaseException:
        vectors.discard()
        raise
    config = {
        "user_id": cube["owner_id"],
        "cube_id": cube["cube_id"],
        "config_schema_version": "2.0",
        "text_mem": {
            "backend": "tree_text",
            "config": {
                "cube_id": cube["cube_id"],
                "memory_filename": TEXTUAL,
                "embedder": {"backend": "memos", "config": {
                    "model_name_or_path": embed_model, "embedding_dims": vectors.dims}},
                "vector_file": VECTORS if with_vectors else None,
            },
        },
        "act_mem": {},
        "para_mem": {},
    }
    (directory / CONFIG).write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return Dumped(str(cube["cube_id"]), nodes, edges, vectors.dims, omitted)
