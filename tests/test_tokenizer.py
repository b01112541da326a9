"""Byte-level BPE tokenizer: training, saving, exact round trips, offsets, special ids."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from rhocluster.corpus.labels import LABELS, NO_LABEL, label_token_spans
from rhocluster.corpus.synthetic import generate_hq_math, generate_math_web, generate_pretrain
from rhocluster.corpus.tokenizer import load_tokenizer, train_tokenizer

TRICKY = [
    "",
    "Solve $2x + 3 = 7$. Then $x = \\frac{4}{2} = \\boxed{2}$.",
    "Question: Tom has 12 apples.\nAnswer: 12 - 5 = 7. The answer is 7.\n\n",
    "  leading and trailing spaces  ",
    "tabs\tand\r\nwindows newlines\n\n\n",
    "emoji 😀🔥👍🏽 ❤️ family 👨‍👩‍👧 flags 🇫🇷",
    "naïve café, e\u0301 (combining), ﬁ ligature, Ω, 数学の問題, العربية",
    "Answer Choices: (A) 3 (B) 5 (C) 7\nThe answer is (B).",
    "<s> literal special strings </s> <pad> <unk>",
    "x^2 \\cdot y_{i+1} \\le \\sqrt{a^2+b^2} 0xDEADBEEF ==",
]


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return generate_math_web(200, 0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    texts = [d["text"] for d in corpus] + [d["text"] for d in generate_hq_math(100, 0) + generate_pretrain(100, 0)]
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    t0 = time.perf_counter()
    train_tokenizer(texts, 512, out)
    return out, time.perf_counter() - t0, texts


@pytest.fixture(scope="module")
def tok(trained):
    return load_tokenizer(trained[0])


def test_trains_fast_and_saves_hf_files(trained):
    out, seconds, _ = trained
    assert seconds < 10
    assert {p.name for p in out.iterdir()} == {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_vocab_and_special_ids(tok):
    assert len(tok) == 512
    assert (tok.unk_token, tok.bos_token, tok.eos_token, tok.pad_token) == ("<unk>", "<s>", "</s>", "<pad>")
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 3)


def test_bos_prepended_eos_not(tok):
    ids = tok("The answer is 7.")["input_ids"]
    assert ids[0] == 1 and 2 not in ids and ids.count(1) == 1
    assert tok("The answer is 7.", add_special_tokens=False)["input_ids"] == ids[1:]
    assert tok.add_bos_token and not tok.add_eos_token
    # a literal "<s>" in scraped text is text, not BOS
    assert 1 not in tok("<s>x</s>", add_special_tokens=False)["input_ids"]


def test_auto_tokenizer_encodes_identically(trained, tok):
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(trained[0]))
    for text in TRICKY:
        assert auto(text)["input_ids"] == tok(text)["input_ids"]


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_exact(tok, text):
    ids = tok(text)["input_ids"]
    assert 0 not in ids or "<unk>" in text  # byte-level: nothing is unknown
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_round_trip_generated_docs(tok, trained):
    for text in trained[2][::5]:
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_digits_are_single_tokens(tok):
    toks = tok.convert_ids_to_tokens(tok("1234 + 56", add_special_tokens=False)["input_ids"])
    assert [t for t in toks if any(c.isdigit() for c in t)] == ["1", "2", "3", "4", "5", "6"]


@pytest.mark.parametrize("text", TRICKY[1:] + ["Home | Forums\n\n© 2020 a8f3c9e1 😀😀"])
def test_offsets_align(tok, text):
    enc = tok(text, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    assert offsets[0] == (0, 0)  # BOS covers no text
    body = offsets[1:]
    # in order, inside the text, and together covering every character
    assert all(0 <= s < e <= len(text) for s, e in body)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(body, body[1:]))
    covered = np.zeros(len(text), bool)
    for s, e in body:
        covered[s:e] = True
    assert covered.all()
    # tokens made of whole characters decode to exactly their offset slice (a token holding
    # part of a multi-byte character decodes to U+FFFD and shares offsets with its neighbours)
    for tid, (s, e) in zip(enc["input_ids"][1:], body):
        piece = tok.decode([tid])
        if "\ufffd" not in piece:
            assert piece == text[s:e]


def test_token_labels_from_real_offsets(tok, corpus):
    counts = np.zeros(len(LABELS))
    for d in corpus[:50]:
        enc = tok(d["text"], return_offsets_mapping=True)
        labels = label_token_spans(enc["offset_mapping"], d["spans"], d["text"])
        assert labels[0] == NO_LABEL and (labels[1:] < len(LABELS)).all()
        # generator puts separators at span starts, so the text-free rule agrees
        assert (label_token_spans(enc["offset_mapping"], d["spans"]) == labels).all()
        counts += np.bincount(labels[1:], minlength=len(LABELS))
    assert (counts > 0).all()


def test_deterministic_and_atomic_overwrite(tmp_path, trained):
    texts = trained[2][:100]
    a, b = tmp_path / "a", tmp_path / "b"
    train_tokenizer(texts, 400, a)
    train_tokenizer(texts, 400, b)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    train_tokenizer(texts[:50], 300, a)  # overwrite an existing directory in place
    assert len(load_tokenizer(a)) == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_rejects_vocab_smaller_than_bytes(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["abc"], 100, tmp_path / "t")
    assert not Path(tmp_path / "t").exists()
