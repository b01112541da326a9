"""Verbatim overlap of held-out and training text: window hashes, coverage per label, sampled files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from rhocluster.corpus.labels import FOOTER, LABELS, MATH
from rhocluster.corpus.overlap import (
    ALL,
    HeldoutWindows,
    _BASE,
    measure_overlap,
    overlap_fraction,
    overlap_markdown,
    overlap_sentence,
    sample_fraction,
    window_hashes,
)


def _direct_hash(codes: list[int]) -> int:
    h = 0
    for c in codes:
        h = (h * _BASE + c) % (1 << 64)
    return h


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 50, 64])
def test_window_hashes_are_the_polynomial_hash_of_every_window(n):
    rng = np.random.default_rng(n)
    codes = rng.integers(0, 0x110000, size=130)
    got = window_hashes(codes, n)
    assert got.dtype == np.uint64 and len(got) == 130 - n + 1
    assert [int(h) for h in got] == [_direct_hash([int(c) for c in codes[i : i + n]]) for i in range(130 - n + 1)]
    assert len(window_hashes(codes[: n - 1], n)) == 0


def _brute_force(heldout: list[dict], training: list[str], n: int) -> dict[str, float]:
    """Per label: share of held-out characters inside an n-window found in a training text (sets of strings)."""
    seen = {t[i : i + n] for t in training for i in range(len(t) - n + 1)}
    hit: dict[str, int] = {}
    total: dict[str, int] = {}
    for d in heldout:
        text = d["text"]
        labels = [None] * len(text)
        for s, e, lab in d.get("spans", []):
            labels[s:e] = [LABELS[lab]] * (e - s)
        covered = [False] * len(text)
        for i in range(len(text) - n + 1):
            if text[i : i + n] in seen:
                covered[i : i + n] = [True] * n
        for c, lab in zip(covered, labels):
            for key in (ALL, lab):
                if key is not None:
                    total[key] = total.get(key, 0) + 1
                    hit[key] = hit.get(key, 0) + c
    return {k: hit[k] / total[k] for k in total}


def test_overlap_fraction_equals_brute_force_with_planted_copies():
    r = random.Random(0)
    alphabet = "ab c"  # few letters: many short chance matches, which must not count
    training = ["".join(r.choice(alphabet) for _ in range(r.randint(0, 300))) for _ in range(30)]
    heldout = []
    for _ in range(12):
        text = "".join(r.choice(alphabet) for _ in range(r.randint(20, 200)))
        if r.random() < 0.6:  # plant a copied run of training text
            src = r.choice([t for t in training if len(t) > 60])
            i = r.randrange(len(src) - 40)
            at = r.randrange(len(text))
            text = text[:at] + src[i : i + r.randint(8, 40)] + text[at:]
        cut = r.randrange(1, len(text))
        heldout.append({"text": text, "spans": [[0, cut, MATH], [cut, len(text), FOOTER]]})
    for n in (6, 12, 20):
        expected = _brute_force(heldout, training, n)
        assert overlap_fraction(heldout, training, n) == pytest.approx(expected, abs=1e-12)
        assert 0 < expected[ALL] < 1


def test_windows_never_cross_documents():
    # "abcdef" is in training only as the concatenation of two documents
    assert overlap_fraction([{"text": "xxabcdefxx"}], ["abc", "def"], 4) == {ALL: 0.0}
    assert overlap_fraction([{"text": "xxabcdefxx"}], ["zabcdz"], 4) == {ALL: 0.4}
    # nor do held-out windows: "cdab" spans two held-out documents
    assert overlap_fraction([{"text": "abcd"}, {"text": "abxx"}], ["cdab"], 4) == {ALL: 0.0}


def test_unlabelled_documents_count_only_in_all():
    w = HeldoutWindows.from_documents([{"text": "hello world"}, {"text": "abc", "spans": [[0, 3, FOOTER]]}], n=3)
    w.mark(window_hashes(np.frombuffer("abc".encode("utf-32-le"), np.uint32), 3), "t")
    assert w.coverage() == {ALL: (3, 14), "footer": (3, 3)}
    assert w.coverage([]) == {ALL: (0, 14), "footer": (0, 3)}


def _write(path, docs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


def test_measure_overlap_per_training_split_and_sampled(tmp_path):
    boiler = "© 2020 Example Site. All rights reserved. Terms of use apply to everything."
    web = [{"text": f"page {i} about fractions and decimals {i * 7}. {boiler}"} for i in range(200)]
    hq = [{"text": f"Question: what is {i} + {i}?\nAnswer: {i} + {i} = {2 * i}. The answer is {2 * i}."} for i in range(50)]
    held = []
    for i in range(5):
        content, footer = f"new page {i} on ratios!", f" {boiler}"  # the footer span holds its leading space
        held.append({"text": content + footer, "spans": [[0, len(content), MATH], [len(content), len(content + footer), FOOTER]]})
    paths = {
        "heldout_web": [_write(tmp_path / "heldout_web/00000.jsonl", held)],
        "web": [_write(tmp_path / "web/00000.jsonl", web[:100]), _write(tmp_path / "web/00001.jsonl", web[100:])],
        "hq": [_write(tmp_path / "hq/00000.jsonl", hq)],
    }
    heldout = {"heldout_web": paths["heldout_web"]}
    training = {"web": paths["web"], "hq": paths["hq"]}
    full = measure_overlap(heldout, training, n=20)
    rows = full["overlap"]["heldout_web"]
    assert rows["footer"]["covered"] == {ALL: 1.0, "web": 1.0, "hq": 0.0}
    assert rows["math"]["covered"][ALL] == 0.0
    footer_chars = rows["footer"]["characters"]
    assert rows[ALL]["covered"][ALL] == pytest.approx(footer_chars / rows[ALL]["characters"])
    assert full["training"]["web"] == {"documents": 200, "of_documents": 200, "characters": sum(len(d["text"]) for d in web),
                                       "fraction": 1.0}
    # a sampled web split: about the asked share of its documents, the same ones on every run
    budget = 0.25 * sum(p.stat().st_size for p in paths["web"])
    assert sample_fraction(paths["web"], budget) == pytest.approx(0.25)
    a = measure_overlap(heldout, training, n=20, training_chars=budget, seed=3)
    assert a == measure_overlap(heldout, training, n=20, training_chars=budget, seed=3)
    assert 25 <= a["training"]["web"]["documents"] <= 75 and a["training"]["web"]["of_documents"] == 200
    assert a["training"]["hq"]["fraction"] == 1.0 and a["training"]["hq"]["documents"] == 50
    assert a["overlap"]["heldout_web"]["footer"]["covered"]["web"] == 1.0  # repeated boilerplate is still found
    md = overlap_markdown(a, "toy")
    assert "| heldout_web | footer | " in md and "| all training | web | hq |" in md and "lower bound" in md
    assert "Sampled by document: web;" in md and "exact" not in md
    assert "exact" in overlap_markdown(full, "toy")
    sentence = overlap_sentence(full)
    assert sentence.startswith(f"{100 * rows[ALL]['covered'][ALL]:.2f}% of held-out web characters lie inside a run of 20")
    assert "lower bound" in overlap_sentence(a)
