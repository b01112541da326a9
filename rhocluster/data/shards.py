"""Fixed-window token shards in Megatron's indexed-dataset format.

One window layout is shared by every stage: a shard is ``W`` windows of ``S`` tokens, stored as
``W`` sequences of length ``S`` in ``{prefix}.bin/.idx`` (megatron-core's indexed-dataset format).
Per-token side arrays (ground-truth labels, reference loss, leaf ids, masks) are ``[W, S]`` arrays
where entry ``[w, t]`` belongs to token ``t`` of window ``w`` *as a prediction target*: position 0
of a window has no left context inside the window and is never a target.

Shards are written (:func:`write_index`) and read (:func:`read_index`) here with numpy: importing
``megatron.core`` costs seconds per job, in most of the workflow's jobs (tokenize, masks, tables,
scoring), while the index is a 34-byte header and three arrays; the writer is tested byte for byte
against megatron's ``IndexedDatasetBuilder`` and the reader against its ``IndexedDataset``, window by
window.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from rhocluster.common.atomic import save_json, save_npy


def token_dtype(vocab_size: int) -> type[np.number]:
    """Smallest unsigned dtype that holds every token id of the vocabulary."""
    return np.uint16 if vocab_size < 65500 else np.int32


@dataclass
class ShardMeta:
    """What ``{prefix}.json`` records about a shard."""

    n_windows: int
    seq_len: int
    n_documents: int
    n_tokens_dropped: int
    dtype: str
    has_labels: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def pack_windows(
    docs: Iterable[tuple[list[int], np.ndarray | None]], seq_len: int, eos_id: int, bos_id: int | None = None
) -> tuple[np.ndarray, np.ndarray | None, int, int]:
    """Concatenate documents (each as ``[BOS] tokens EOS``) and cut them into full windows.

    Returns ``(tokens [W, S] int64, labels [W, S] uint8 or None, n_docs, n_dropped_tail_tokens)``.
    BOS (when ``bos_id`` is given) carries the label of the document's first token and EOS that of
    its last, so every position has a ground-truth label. BOS is prepended as in Llama/TinyLlama
    pretraining and as lm-eval's ``hf`` backend does at evaluation, so both see the same framing.
    """
    ids: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    with_labels = None
    n_docs = 0
    for tok, lab in docs:
        n_docs += 1
        if with_labels is None:
            with_labels = lab is not None
        head = [] if bos_id is None else [bos_id]
        ids.append(np.asarray(head + list(tok) + [eos_id], dtype=np.int64))
        if with_labels:
            lab = np.asarray(lab, dtype=np.uint8)
            if len(lab) != len(tok):
                raise ValueError(f"document {n_docs}: {len(lab)} labels for {len(tok)} tokens")
            last = lab[-1:] if len(lab) else np.zeros(1, np.uint8)
            first = (lab[:1] if len(lab) else last) if bos_id is not None else lab[:0]
            labels.append(np.concatenate([first, lab, last]))
    flat = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    n_windows = len(flat) // seq_len
    used = n_windows * seq_len
    tokens = flat[:used].reshape(n_windows, seq_len)
    lab_arr = None
    if with_labels:
        lab_arr = np.concatenate(labels)[:used].reshape(n_windows, seq_len)
    return tokens, lab_arr, n_docs, len(flat) - used


def write_shard(
    prefix: Path | str,
    tokens: np.ndarray,
    labels: np.ndarray | None,
    vocab_size: int,
    n_documents: int,
    n_dropped: int,
) -> ShardMeta:
    """Write ``{prefix}.bin/.idx`` (one sequence per window), ``{prefix}.labels.npy`` and ``{prefix}.json``.

    Files are built under a temporary prefix and renamed at the end, the ``.json`` last, so a
    crashed job never leaves a shard that looks complete.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(vocab_size)
    if tokens.size and int(tokens.max()) >= vocab_size:
        raise ValueError(f"{prefix}: token id {int(tokens.max())} >= vocab_size {vocab_size}")
    tmp = prefix.with_name(f".{prefix.name}.{os.getpid()}.tmp")
    with open(f"{tmp}.bin", "wb") as fh:
        fh.write(np.ascontiguousarray(tokens, dtype=dtype).tobytes(order="C"))
    seq_len = int(tokens.shape[1]) if tokens.ndim == 2 else 0
    write_index(f"{tmp}.idx", dtype, n_windows=int(tokens.shape[0]), seq_len=seq_len)
    os.replace(f"{tmp}.bin", f"{prefix}.bin")
    os.replace(f"{tmp}.idx", f"{prefix}.idx")
    if labels is not None:
        save_npy(f"{prefix}.labels.npy", labels.astype(np.uint8))
    meta = ShardMeta(
        n_windows=int(tokens.shape[0]),
        seq_len=int(tokens.shape[1]) if tokens.ndim == 2 else 0,
        n_documents=n_documents,
        n_tokens_dropped=n_dropped,
        dtype=np.dtype(dtype).name,
        has_labels=labels is not None,
    )
    save_json(f"{prefix}.json", meta.to_dict())
    return meta


# Megatron's indexed-dataset index (megatron/core/datasets/indexed_dataset.py, _IndexWriter): the magic,
# version 1 (uint64), the token dtype's code (uint8), the sequence and document counts (uint64), then
# sequence lengths (int32), sequence byte offsets into the .bin (int64) and document indices (int64).
_INDEX_MAGIC = b"MMIDIDX\x00\x00"
_INDEX_HEADER = 34
_INDEX_DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32, 8: np.uint16}


_DTYPE_CODES = {np.dtype(dtype): code for code, dtype in _INDEX_DTYPES.items()}


def write_index(path: Path | str, dtype: type[np.number], n_windows: int, seq_len: int) -> None:
    """Write the ``.idx`` of ``n_windows`` sequences of ``seq_len`` tokens of ``dtype`` stored back to back,
    one document each: the bytes megatron's ``IndexedDatasetBuilder.finalize`` writes for them."""
    itemsize = np.dtype(dtype).itemsize
    with open(path, "wb") as fh:
        fh.write(_INDEX_MAGIC)
        fh.write(struct.pack("<QB", 1, _DTYPE_CODES[np.dtype(dtype)]))
        fh.write(struct.pack("<QQ", n_windows, n_windows + 1))
        fh.write(np.full(n_windows, seq_len, dtype=np.int32).tobytes())
        fh.write((np.arange(n_windows, dtype=np.int64) * (seq_len * itemsize)).tobytes())
        fh.write(np.arange(n_windows + 1, dtype=np.int64).tobytes())


@dataclass(frozen=True)
class Index:
    """A shard's ``.idx``: token dtype, and each sequence's length and byte offset into the ``.bin``."""

    dtype: np.dtype
    lengths: np.ndarray  # int32 [n_sequences]
    pointers: np.ndarray  # int64 [n_sequences]


def read_index(prefix: Path | str) -> Index:
    """Read ``{prefix}.idx`` (memory-mapped); a file that is not such an index fails naming it."""
    path = Path(f"{prefix}.idx")
    with open(path, "rb") as fh:
        head = fh.read(_INDEX_HEADER)
    if len(head) < _INDEX_HEADER or head[:9] != _INDEX_MAGIC:
        raise ValueError(f"{path}: not a Megatron indexed-dataset index (bad header)")
    (version,) = struct.unpack("<Q", head[9:17])
    code = head[17]
    n_seq, _n_docs = struct.unpack("<QQ", head[18:34])
    if version != 1 or code not in _INDEX_DTYPES:
        raise ValueError(f"{path}: unsupported index version {version} or dtype code {code}")
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    if raw.size < _INDEX_HEADER + 12 * n_seq:
        raise ValueError(f"{path}: truncated ({raw.size} bytes for {n_seq} sequences)")
    lengths = np.frombuffer(raw, np.int32, n_seq, offset=_INDEX_HEADER)
    pointers = np.frombuffer(raw, np.int64, n_seq, offset=_INDEX_HEADER + 4 * n_seq)
    return Index(np.dtype(_INDEX_DTYPES[code]), lengths, pointers)


class Shard:
    """Read-only view of one shard; checks the index against the metadata on open."""

    def __init__(self, prefix: Path | str):
        self.prefix = Path(prefix)
        meta_path = Path(f"{self.prefix}.json")
        if not meta_path.exists():
            raise FileNotFoundError(f"shard {self.prefix}: metadata {meta_path} is missing")
        self.meta = ShardMeta(**json.loads(meta_path.read_text()))
        index = read_index(self.prefix)
        lengths = index.lengths
        if len(lengths) != self.meta.n_windows:
            raise ValueError(
                f"shard {self.prefix}: index has {len(lengths)} windows, metadata says {self.meta.n_windows}"
            )
        if len(lengths) and not np.all(lengths == self.meta.seq_len):
            bad = int(np.flatnonzero(lengths != self.meta.seq_len)[0])
            raise ValueError(
                f"shard {self.prefix}: window {bad} has {lengths[bad]} tokens, expected {self.meta.seq_len}"
            )
        if index.dtype.name != self.meta.dtype:
            raise ValueError(
                f"shard {self.prefix}: index dtype {index.dtype.name} disagrees with metadata dtype {self.meta.dtype}"
            )
        w, s = self.shape
        expected = np.arange(w, dtype=np.int64) * s * index.dtype.itemsize
        if not np.array_equal(index.pointers, expected):
            raise ValueError(f"shard {self.prefix}: windows are not stored back to back in {self.prefix}.bin")
        tokens = np.memmap(f"{self.prefix}.bin", dtype=index.dtype, mode="r") if w * s else np.zeros(0, index.dtype)
        if tokens.size < w * s:
            raise ValueError(f"shard {self.prefix}: {self.prefix}.bin holds {tokens.size} tokens, the index {w * s}")
        self._tokens = tokens[: w * s].reshape(w, s)  # [W, S] view of the .bin, read on demand

    @property
    def n_windows(self) -> int:
        return self.meta.n_windows

    @property
    def seq_len(self) -> int:
        return self.meta.seq_len

    @property
    def shape(self) -> tuple[int, int]:
        return (self.meta.n_windows, self.meta.seq_len)

    def window(self, i: int) -> np.ndarray:
        """Tokens of window ``i`` as int64 ``[S]``."""
        return np.asarray(self._tokens[i], dtype=np.int64)

    def windows(self, idx: Iterable[int] | None = None) -> np.ndarray:
        """Tokens of the given windows (all by default) as int64 ``[n, S]``."""
        if idx is None:
            return np.asarray(self._tokens, dtype=np.int64)
        rows = np.fromiter((int(i) for i in idx), dtype=np.int64)
        return self._tokens[rows].astype(np.int64)

    def labels(self) -> np.ndarray:
        """Ground-truth label ids uint8 ``[W, S]``; error if the shard was built without labels."""
        path = Path(f"{self.prefix}.labels.npy")
        if not self.meta.has_labels:
            raise ValueError(f"shard {self.prefix} has no ground-truth labels")
        return load_aligned(path, self.shape, np.uint8, what="labels")

    def target_mask(self) -> np.ndarray:
        """bool ``[W, S]``: True where the position is a prediction target (every position but 0)."""
        valid = np.ones(self.shape, dtype=bool)
        valid[:, 0] = False
        return valid


def load_aligned(path: Path | str, shape: tuple[int, int], dtype: type | np.dtype, what: str) -> np.ndarray:
    """Load a per-token array and check it is ``shape`` and ``dtype``; errors name the file."""
    arr = np.load(path, mmap_mode="r")
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{what} file {path}: shape {tuple(arr.shape)} does not match its shard {tuple(shape)}")
    if arr.dtype != np.dtype(dtype):
        raise ValueError(f"{what} file {path}: dtype {arr.dtype}, expected {np.dtype(dtype)}")
    return arr
