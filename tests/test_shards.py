"""Fixed-window shards: packing, the Megatron indexed format, metadata checks and atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rhocluster.common.atomic import save_npy
from rhocluster.data.shards import Shard, load_aligned, pack_windows, write_shard

BOS, EOS = 1, 2


def test_pack_windows_frames_documents_and_carries_labels():
    docs = [([10, 11, 12], np.array([0, 0, 3], np.uint8)), ([20, 21], np.array([4, 1], np.uint8))]
    tokens, labels, n_docs, dropped = pack_windows(docs, seq_len=4, eos_id=EOS, bos_id=BOS)
    # stream: BOS 10 11 12 EOS BOS 20 21 EOS -> 9 tokens, two windows of 4, one dropped
    assert tokens.tolist() == [[BOS, 10, 11, 12], [EOS, BOS, 20, 21]]
    assert labels.tolist() == [[0, 0, 0, 3], [3, 4, 4, 1]]
    assert (n_docs, dropped) == (2, 1)


def test_pack_windows_without_bos_or_labels():
    tokens, labels, n_docs, dropped = pack_windows([([5, 6, 7], None)], seq_len=2, eos_id=EOS)
    assert tokens.tolist() == [[5, 6], [7, EOS]] and labels is None and (n_docs, dropped) == (1, 0)


def test_pack_windows_rejects_misaligned_labels():
    with pytest.raises(ValueError, match="document 1: 2 labels for 3 tokens"):
        pack_windows([([5, 6, 7], np.zeros(2, np.uint8))], seq_len=2, eos_id=EOS)


def make_shard(tmp_path, n_windows=5, seq_len=8, vocab=100):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, vocab, size=(n_windows, seq_len))
    labels = rng.integers(0, 5, size=(n_windows, seq_len)).astype(np.uint8)
    prefix = tmp_path / "shard" / "00000"
    write_shard(prefix, tokens, labels, vocab, n_documents=3, n_dropped=2)
    return prefix, tokens, labels


def test_shard_round_trip(tmp_path):
    prefix, tokens, labels = make_shard(tmp_path)
    shard = Shard(prefix)
    assert shard.shape == tokens.shape
    np.testing.assert_array_equal(shard.windows(), tokens)
    np.testing.assert_array_equal(shard.window(3), tokens[3])
    np.testing.assert_array_equal(shard.labels(), labels)
    meta = json.loads((tmp_path / "shard/00000.json").read_text())
    assert meta == dict(n_windows=5, seq_len=8, n_documents=3, n_tokens_dropped=2, dtype="uint16", has_labels=True)
    assert not shard.target_mask()[:, 0].any() and shard.target_mask()[:, 1:].all()
    assert not list((tmp_path / "shard").glob(".*")), "no temporary files are left behind"


def test_large_vocabularies_use_int32(tmp_path):
    prefix = tmp_path / "big"
    write_shard(prefix, np.array([[0, 70000]]), None, 80000, 1, 0)
    assert Shard(prefix).meta.dtype == "int32" and Shard(prefix).window(0).tolist() == [0, 70000]


def test_token_beyond_vocabulary_fails_naming_the_shard(tmp_path):
    with pytest.raises(ValueError, match=r"bad: token id 100 >= vocab_size 100"):
        write_shard(tmp_path / "bad", np.array([[1, 100]]), None, 100, 1, 0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_windows", 6, "index has 5 windows, metadata says 6"),
        ("seq_len", 9, "window 0 has 8 tokens, expected 9"),
        ("dtype", "int32", "index dtype uint16 disagrees with metadata dtype int32"),
    ],
)
def test_shard_disagreeing_with_its_index_fails_naming_it(tmp_path, field, value, message):
    prefix, _, _ = make_shard(tmp_path)
    meta_path = tmp_path / "shard/00000.json"
    meta = json.loads(meta_path.read_text())
    meta[field] = value
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"shard {prefix}: {message}"):
        Shard(prefix)


def test_shard_without_metadata_is_incomplete(tmp_path):
    prefix, _, _ = make_shard(tmp_path)
    (tmp_path / "shard/00000.json").unlink()
    with pytest.raises(FileNotFoundError, match="metadata .* is missing"):
        Shard(prefix)


def test_load_aligned_names_the_file(tmp_path):
    save_npy(tmp_path / "mask.npy", np.zeros((5, 7), np.uint8))
    with pytest.raises(ValueError, match=r"mask file .*mask.npy: shape \(5, 7\) does not match its shard \(5, 8\)"):
        load_aligned(tmp_path / "mask.npy", (5, 8), np.uint8, what="mask")
    with pytest.raises(ValueError, match="dtype uint8, expected float16"):
        load_aligned(tmp_path / "mask.npy", (5, 7), np.float16, what="loss")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    unpicklable = np.array([lambda: None], dtype=object)
    with pytest.raises(Exception):
        save_npy(tmp_path / "x.npy", unpicklable)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("vocab", [300, 70000])  # uint16 and int32 tokens
def test_the_numpy_reader_equals_megatrons_indexed_dataset(tmp_path, vocab):
    """Shard reads .bin/.idx with numpy (no megatron.core import); megatron's IndexedDataset reads the
    same windows, and a file that is not an index fails naming it."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from rhocluster.data.shards import Shard, read_index, write_shard

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, vocab, size=(13, 17))
    write_shard(tmp_path / "s", tokens, None, vocab, 5, 0)
    ours, theirs = Shard(tmp_path / "s"), IndexedDataset(str(tmp_path / "s"))
    assert read_index(tmp_path / "s").dtype == theirs.index.dtype
    for i in range(13):
        np.testing.assert_array_equal(ours.window(i), np.asarray(theirs[i], np.int64))
    np.testing.assert_array_equal(ours.windows(), tokens)
    np.testing.assert_array_equal(ours.windows([12, 0, 5]), tokens[[12, 0, 5]])
    assert ours.windows([]).shape == (0, 17)
    (tmp_path / "bad.idx").write_bytes(b"not an index at all, not at all")
    with pytest.raises(ValueError, match=r"bad.idx: not a Megatron indexed-dataset index"):
        read_index(tmp_path / "bad")


@pytest.mark.parametrize("vocab, windows", [(300, 13), (70000, 13), (300, 0)])  # uint16, int32, empty
def test_the_numpy_writer_writes_megatrons_bytes(tmp_path, vocab, windows):
    """write_shard's .bin/.idx (numpy, no megatron.core import) are byte for byte what megatron's
    IndexedDatasetBuilder writes for the same windows, one document each."""
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    from rhocluster.data.shards import token_dtype

    tokens = np.random.default_rng(1).integers(0, vocab, size=(windows, 17))
    write_shard(tmp_path / "ours", tokens, None, vocab, 5, 0)
    builder = IndexedDatasetBuilder(str(tmp_path / "theirs.bin"), dtype=token_dtype(vocab))
    for window in tokens:
        builder.add_document(torch.from_numpy(window.astype(np.int64)), [len(window)])
    builder.finalize(str(tmp_path / "theirs.idx"))
    for ext in ("bin", "idx"):
        assert (tmp_path / f"ours.{ext}").read_bytes() == (tmp_path / f"theirs.{ext}").read_bytes(), ext
