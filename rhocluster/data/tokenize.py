"""tokenize stage: documents (jsonl) -> one fixed-window shard with per-token ground-truth labels."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from rhocluster.common.jsonl import read_jsonl
from rhocluster.corpus.labels import NO_LABEL, label_token_spans
from rhocluster.corpus.tokenizer import load_tokenizer
from rhocluster.data.shards import ShardMeta, pack_windows, write_shard

def _encode(docs_path: Path, tokenizer_dir: Path, batch: int = 256) -> Iterator[tuple[list[int], np.ndarray | None]]:
    tok = load_tokenizer(tokenizer_dir)
    buf: list[dict] = []

    def flush():
        enc = tok([d["text"] for d in buf], add_special_tokens=False, return_offsets_mapping="spans" in buf[0])
        for i, d in enumerate(buf):
            ids = enc["input_ids"][i]
            labels = label_token_spans(enc["offset_mapping"][i], d["spans"]) if "spans" in d else None
            yield ids, labels

    for doc in read_jsonl(docs_path):
        if "text" not in doc:
            raise ValueError(f"{docs_path}: document {doc.get('id', '?')} has no 'text'")
        if buf and (("spans" in doc) != ("spans" in buf[0])):
            raise ValueError(f"{docs_path}: document {doc.get('id', '?')} mixes labelled and unlabelled documents")
        buf.append(doc)
        if len(buf) == batch:
            yield from flush()
            buf = []
    if buf:
        yield from flush()


def tokenize_shard(
    docs_path: Path | str, tokenizer_dir: Path | str, prefix: Path | str, window: int, vocab_size: int
) -> ShardMeta:
    """Tokenize documents, frame each as ``BOS ... EOS``, pack into windows of ``window`` tokens and write the shard.

    Shards without ground-truth spans get a label array of ``NO_LABEL`` and ``has_labels = False``.
    """
    tok = load_tokenizer(Path(tokenizer_dir))
    if len(tok) > vocab_size:
        raise ValueError(f"tokenizer {tokenizer_dir} has {len(tok)} tokens but model.vocab_size is {vocab_size}")
    tokens, labels, n_docs, dropped = pack_windows(
        _encode(Path(docs_path), Path(tokenizer_dir)), window, tok.eos_token_id, tok.bos_token_id
    )
    has_labels = labels is not None
    if labels is None:
        labels = np.full(tokens.shape, NO_LABEL, np.uint8)
    meta = write_shard(prefix, tokens, labels, vocab_size, n_docs, dropped)
    if not has_labels:
        from rhocluster.common.atomic import save_json

        meta.has_labels = False
        save_json(f"{prefix}.json", meta.to_dict())
    return meta
