"""Synthetic corpora, span labels and JSONL I/O."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest

from rhocluster.corpus.jsonl import read_jsonl, write_jsonl
from rhocluster.corpus.labels import FOOTER, JUNK, LABELS, MATH, NAVIGATION, NO_LABEL, PROSE, label_token_spans
from rhocluster.corpus.synthetic import generate_hq_math, generate_math_web, generate_pretrain

GENERATORS = [generate_math_web, generate_hq_math, generate_pretrain]


@pytest.fixture(scope="module")
def web() -> list[dict]:
    return generate_math_web(200, 0)


def _label_chars(docs: list[dict]) -> np.ndarray:
    counts = np.zeros(len(LABELS))
    for d in docs:
        for s, e, lab in d["spans"]:
            counts[lab] += e - s
    return counts


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("gen", GENERATORS)
def test_same_seed_same_bytes_other_seed_differs(gen):
    a = json.dumps(gen(30, 7), ensure_ascii=False)
    assert a == json.dumps(gen(30, 7), ensure_ascii=False)
    assert a != json.dumps(gen(30, 8), ensure_ascii=False)


@pytest.mark.parametrize("gen", GENERATORS)
def test_prefix_stable_and_ids_unique(gen):
    small, big = gen(10, 3), gen(25, 3)
    assert big[:10] == small
    assert len({d["id"] for d in big}) == 25
    assert all(isinstance(d["text"], str) and d["text"] for d in big)


# ---------------------------------------------------------------- math web structure


def test_spans_tile_text_exactly(web):
    for d in web:
        spans = d["spans"]
        assert spans[0][0] == 0 and spans[-1][1] == len(d["text"])
        for (s0, e0, l0), (s1, e1, l1) in zip(spans, spans[1:]):
            assert e0 == s1 and l0 != l1  # contiguous; equal neighbours are merged
        for s, e, lab in spans:
            assert s < e and 0 <= lab < len(LABELS)
            if s > 0:  # separators belong to the following span, content ends visibly
                assert not d["text"][e - 1].isspace()


def test_label_mix_within_ranges(web):
    frac = _label_chars(web) / _label_chars(web).sum()
    assert 0.5 <= frac[MATH] <= 0.8
    assert 0.2 <= 1 - frac[MATH] <= 0.5
    for lab in (PROSE, NAVIGATION, FOOTER, JUNK):
        assert frac[lab] >= 0.02, LABELS[lab]
    # the noise share varies from page to page
    per_doc = [1 - _label_chars([d])[MATH] / len(d["text"]) for d in web]
    assert min(per_doc) < 0.2 and max(per_doc) > 0.45 and np.std(per_doc) > 0.05


def test_every_label_occurs_in_small_corpus():
    assert all(_label_chars(generate_math_web(20, 1)) > 0)


def test_footers_repeat_across_documents(web):
    footer_docs = Counter()
    for d in web:
        # adjacent footer blocks (site footer + cookie notice) merge into one span: count lines
        seen = {ln.strip() for s, e, lab in d["spans"] if lab == FOOTER for ln in d["text"][s:e].split("\n") if ln.strip()}
        footer_docs.update(seen)
    top = footer_docs.most_common(3)
    assert all(n >= 10 for _, n in top), top
    # only a handful of distinct footer blocks exist across 200 pages
    assert len(footer_docs) < 20


def test_math_spans_contain_evaluation_patterns(web):
    math_text = "\n".join(d["text"][s:e] for d in web for s, e, lab in d["spans"] if lab == MATH)
    for pat in ("Question: ", "\nAnswer: ", "The answer is ", "Answer Choices: (A)", "Problem:\n", "\nSolution:\n",
                "\\boxed{", "\\frac{", "$x = ", "| Item | Quantity |", "Definition.", "Theorem"):
        assert pat in math_text, pat
    noise = "\n".join(d["text"][s:e] for d in web for s, e, lab in d["spans"] if lab != MATH)
    assert "The answer is" not in noise
    assert re.search(r"[0-9a-f]{32}", noise) and "utm_source=" in noise and "Home" in noise


_EXPR = re.compile(r"(-?\d+(?: [-+*/] -?\d+)+) = \$?(-?\d+)(?![\d/])")


def _check_arithmetic(text: str) -> int:
    """Verify every written-out 'a op b ... = c' chain; return how many were checked."""
    n = 0
    for m in _EXPR.finditer(text):
        before = text[: m.start()].rstrip(" ")
        if before.endswith(("+", "-", "*", "/", "(", "^", "\\cdot", "\\times")) or text[m.end():].startswith((" \\", "^")):
            continue  # match starts or ends inside a longer expression
        assert eval(m.group(1)) == int(m.group(2)), m.group(0)  # noqa: S307 - digits and operators only
        n += 1
    return n


def test_written_arithmetic_is_correct(web):
    hq = generate_hq_math(200, 0)
    checked = sum(_check_arithmetic(d["text"]) for d in hq + web + generate_pretrain(100, 0))
    assert checked > 500


def test_hq_formats_and_answers():
    docs = generate_hq_math(150, 2)
    text = "\n\n".join(d["text"] for d in docs)
    assert "Question: " in text and "Problem:\n" in text and "Answer Choices: (A)" in text
    n_gsm = n_mc = n_boxed = 0
    for ex in text.split("\n\n"):
        if ex.startswith("Problem:\n"):
            assert "\nSolution:\n" in ex and re.search(r"\\boxed\{[^{}]*(\{[^{}]*\}[^{}]*)*\}\$\.$", ex), ex
            n_boxed += 1
        elif "\nAnswer Choices: " in ex:
            letter = re.search(r"The answer is \(([A-E])\)\.$", ex).group(1)
            value = re.search(rf"\({letter}\) (-?\d+)", ex).group(1)
            reasoning = ex.split("\nAnswer: ", 1)[1]
            assert re.search(rf"(?<![\d-]){re.escape(value)}(?!\d)", reasoning), ex
            n_mc += 1
        else:
            assert ex.startswith("Question: ") and "\nAnswer: " in ex
            assert re.search(r"The answer is -?\d+(/\d+)?\.$", ex), ex
            n_gsm += 1
    assert min(n_gsm, n_mc, n_boxed) > 30
    letters = Counter(re.findall(r"The answer is \(([A-E])\)", text))
    assert len(letters) >= 4 and max(letters.values()) < 0.45 * sum(letters.values())  # no letter bias


def test_pretrain_is_mostly_prose():
    text = "\n".join(d["text"] for d in generate_pretrain(100, 0))
    assert "The answer is" not in text and "Question:" not in text
    digits = sum(c.isdigit() for c in text)
    assert digits / len(text) < 0.08


# ---------------------------------------------------------------- span labels -> token labels


def test_label_token_spans_hand_built():
    #       0123 4 5 678901234567
    text = "ab cd\n\nHome xyz!!"
    spans = [[0, 5, MATH], [5, 12, NAVIGATION], [12, 17, JUNK]]  # the space at 11 is navigation
    offsets = [
        (0, 0),    # BOS: no text
        (0, 2),    # "ab"
        (2, 5),    # " cd"
        (5, 7),    # "\n\n": whitespace only -> span of its first char (navigation)
        (7, 11),   # "Home"
        (11, 15),  # " xyz": starts on a navigation space, first non-space is junk
        (4, 9),    # "d\n\nHo": crosses math->navigation, first non-space char is math
        (15, 17),  # "!!"
        (17, 17),  # EOS
    ]
    with_text = label_token_spans(offsets, spans, text)
    assert with_text.dtype == np.uint8
    assert with_text.tolist() == [NO_LABEL, MATH, MATH, NAVIGATION, NAVIGATION, JUNK, MATH, JUNK, NO_LABEL]
    # without text the token's first character decides: only " xyz" differs
    no_text = label_token_spans(offsets, spans)
    assert no_text.tolist() == [NO_LABEL, MATH, MATH, NAVIGATION, NAVIGATION, NAVIGATION, MATH, JUNK, NO_LABEL]
    assert label_token_spans([], spans).shape == (0,)


# ---------------------------------------------------------------- JSONL


def test_jsonl_round_trip_and_atomic(tmp_path):
    records = [{"id": "a", "text": "x = \\frac{1}{2} 🙂\n"}, {"id": "b", "spans": [[0, 1, 0]]}]
    path = tmp_path / "sub" / "data.jsonl"
    write_jsonl(records, path)
    assert list(read_jsonl(path)) == records
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.jsonl"]  # no temp file left
    assert "🙂" in path.read_text(encoding="utf-8")


def test_jsonl_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "data.jsonl"
    write_jsonl([{"v": 1}], path)

    def broken():
        yield {"v": 2}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(broken(), path)
    assert list(read_jsonl(path)) == [{"v": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_read_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n', encoding="utf-8")
    it = read_jsonl(path)
    assert next(it) == {"a": 1}
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:3:"):
        next(it)
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: expected a JSON object"):
        list(read_jsonl(path))
