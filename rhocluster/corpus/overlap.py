"""How much held-out text appears verbatim in the training text.

The statistic: the fraction of held-out characters that lie inside a window of ``n`` (default
:data:`NGRAM`, 50) consecutive characters which also occurs somewhere in the training text. Windows
never cross a document boundary. It is reported per ground-truth label where the held-out documents
carry ``spans`` (the generated corpus) and over all their characters.

Windows are compared by a 64-bit polynomial hash of their code points (mod 2**64), computed for every
position at once in ``2 log2(n)`` numpy passes (:func:`window_hashes`). The held-out side is kept whole
(every window's hash, sorted); training text is streamed in chunks and only marks which held-out
windows it contains, so memory does not grow with the training corpus. At scale both sides can be
sampled by document (:func:`sample_documents`); a sampled training split gives a lower bound.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rhocluster.corpus.labels import LABELS, NO_LABEL

NGRAM = 50
"""Window length in characters: a shared run this long is copied text, not a common phrase."""

ALL = "all"  # the row (all characters) and the column (all training splits) that pool the others
_SEP = 0x110000  # one past the last Unicode code point: separates documents, never inside a window
_BASE = 0x9E3779B97F4A7C15  # odd, so every power of it is a unit mod 2**64
_CHUNK_CHARS = 1 << 23  # training characters hashed per numpy pass (~64 MB of uint64 per array)


def _power(k: int) -> np.uint64:
    return np.uint64(pow(_BASE, k, 1 << 64))


def window_hashes(codes: np.ndarray, n: int) -> np.ndarray:
    """uint64 ``[len(codes) - n + 1]``: hash of every window ``codes[i : i + n]``.

    The hash is ``sum_j codes[i + j] * BASE**(n - 1 - j) mod 2**64``, built by doubling: hashes of
    windows of length ``k`` give those of length ``2k``, and the binary digits of ``n`` are appended.
    Unsigned numpy arithmetic wraps, which is the reduction mod 2**64.
    """
    if n < 1:
        raise ValueError(f"window length {n} must be >= 1")
    c = np.asarray(codes, dtype=np.uint64)
    if len(c) < n:
        return np.zeros(0, np.uint64)
    out, out_len = None, 0  # out[i]: hash of c[i : i + out_len]
    block, k = c, 1  # block[i]: hash of c[i : i + k]
    m = n
    while m:
        if m & 1:
            if out is None:
                out, out_len = block, k
            else:
                size = len(c) - out_len - k + 1
                out = out[:size] * _power(k) + block[out_len : out_len + size]
                out_len += k
        m >>= 1
        if m:
            size = len(c) - 2 * k + 1
            block = block[:size] * _power(k) + block[k : k + size]
            k *= 2
    return out[: len(c) - n + 1]


def _codes(texts: Sequence[str]) -> np.ndarray:
    """uint64 ``[sum(len) + len(texts) - 1]``: code points of the texts, a separator between two."""
    if not texts:
        return np.zeros(0, np.uint64)
    codes = np.frombuffer("\0".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    ends = np.cumsum([len(t) + 1 for t in texts])[:-1] - 1
    codes[ends] = _SEP
    return codes


def _inside_documents(codes: np.ndarray, n: int) -> np.ndarray:
    """bool ``[len(codes) - n + 1]``: the window starting there holds no separator."""
    seps = np.concatenate([[0], np.cumsum(codes == _SEP)])
    return (seps[n:] - seps[: len(seps) - n]) == 0


def training_hashes(texts: Iterable[str], n: int = NGRAM, chunk_chars: int = _CHUNK_CHARS) -> Iterator[np.ndarray]:
    """Hashes (uint64) of every window of the texts that lies inside one document, a chunk at a time."""
    batch: list[str] = []
    size = 0
    for text in texts:
        if len(text) < n:
            continue
        batch.append(text)
        size += len(text) + 1
        if size >= chunk_chars:
            codes = _codes(batch)
            yield window_hashes(codes, n)[_inside_documents(codes, n)]
            batch, size = [], 0
    if batch:
        codes = _codes(batch)
        yield window_hashes(codes, n)[_inside_documents(codes, n)]


@dataclass
class HeldoutWindows:
    """The held-out side: every character's label and every window's hash, and which of the distinct
    windows the training text has shown so far (:meth:`mark`), per training source."""

    n: int
    labels: np.ndarray  # uint8 [C]: label id of each character, NO_LABEL where the document has no spans
    text: np.ndarray  # bool [C]: False at the separators between documents
    window: np.ndarray  # int64 [C - n + 1]: index into `unique` of the window starting there, -1 across documents
    unique: np.ndarray  # uint64 [U]: sorted distinct window hashes
    documents: int
    seen: dict[str, np.ndarray] = field(default_factory=dict)  # source -> bool [U]

    @classmethod
    def from_documents(cls, docs: Iterable[dict], n: int = NGRAM) -> HeldoutWindows:
        """From ``{"text", "spans"?}`` documents (``spans``: ``[start, end, label]`` tiling the text)."""
        texts, labels = [], []
        for d in docs:
            text = d["text"]
            lab = np.full(len(text), NO_LABEL, np.uint8)
            for start, end, label in d.get("spans") or []:
                lab[start:end] = label
            texts.append(text)
            labels.extend([lab, np.full(1, NO_LABEL, np.uint8)])
        codes = _codes(texts)
        hashes = window_hashes(codes, n)
        inside = _inside_documents(codes, n)
        unique, inverse = np.unique(hashes[inside], return_inverse=True)
        window = np.full(len(hashes), -1, np.int64)
        window[inside] = inverse
        return cls(
            n=n,
            labels=np.concatenate(labels)[: len(codes)] if labels else np.zeros(0, np.uint8),
            text=codes != _SEP,
            window=window,
            unique=unique,
            documents=len(texts),
        )

    def mark(self, hashes: np.ndarray, source: str) -> None:
        """Record which held-out windows occur among ``hashes`` (uint64, windows of training text)."""
        seen = self.seen.setdefault(source, np.zeros(len(self.unique), bool))
        if not len(self.unique) or not len(hashes):
            return
        hashes = np.sort(hashes)  # sorted keys make the search walk `unique` forward: ~10x faster than random order
        idx = np.searchsorted(self.unique, hashes)
        idx[idx == len(self.unique)] = 0
        seen[idx[self.unique[idx] == hashes]] = True

    def covered(self, sources: Sequence[str] | None = None) -> np.ndarray:
        """bool ``[C]``: the character lies in a window seen in any of ``sources`` (default: all marked)."""
        seen = np.zeros(len(self.unique), bool)
        for source in self.seen if sources is None else sources:
            seen |= self.seen[source]
        hit = np.zeros(len(self.window), bool)
        inside = self.window >= 0
        hit[inside] = seen[self.window[inside]]
        starts = np.flatnonzero(hit)
        size = len(self.labels)
        depth = np.cumsum(np.bincount(starts, minlength=size + 1) - np.bincount(starts + self.n, minlength=size + 1))
        return depth[:size] > 0

    def coverage(self, sources: Sequence[str] | None = None) -> dict[str, tuple[int, int]]:
        """``{label or "all": (covered characters, characters)}``; labels only where documents carry spans."""
        covered = self.covered(sources)
        out = {ALL: (int(covered[self.text].sum()), int(self.text.sum()))}
        for j, name in enumerate(LABELS):
            sel = self.labels == j
            if sel.any():
                out[name] = (int(covered[sel].sum()), int(sel.sum()))
        return out


def overlap_fraction(heldout: Iterable[dict], training: Iterable[str], n: int = NGRAM) -> dict[str, float]:
    """``{label or "all": fraction}`` of held-out characters inside an ``n``-character window that occurs
    in a training text (exact: every window of both sides)."""
    windows = HeldoutWindows.from_documents(heldout, n)
    for hashes in training_hashes(training, n):
        windows.mark(hashes, "training")
    return {name: hit / total for name, (hit, total) in windows.coverage().items()}


@dataclass
class SampleCount:
    """What :func:`sample_documents` read: documents kept, documents seen, characters kept."""

    documents: int = 0
    of_documents: int = 0
    characters: int = 0


def sample_fraction(paths: Sequence[Path | str], max_chars: float) -> float:
    """Share of documents to read from ``paths`` for about ``max_chars`` characters (their bytes bound
    their characters from above; 1.0 when they fit)."""
    size = sum(Path(p).stat().st_size for p in paths)
    return 1.0 if size <= max_chars else max_chars / size


def sample_documents(
    paths: Sequence[Path | str], fraction: float, seed: int | tuple[int, ...], count: SampleCount
) -> Iterator[dict]:
    """Documents of jsonl files, each kept with probability ``fraction`` (seeded by ``seed`` and the
    file's position); ``count`` is updated as they are read."""
    for k, path in enumerate(paths):
        rng = np.random.default_rng([*((seed,) if isinstance(seed, int) else seed), k])
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                count.of_documents += 1
                if fraction >= 1.0 or rng.random() < fraction:
                    doc = json.loads(line)
                    count.documents += 1
                    count.characters += len(doc["text"])
                    yield doc


def measure_overlap(
    heldout: Mapping[str, Sequence[Path | str]],
    training: Mapping[str, Sequence[Path | str]],
    n: int = NGRAM,
    heldout_chars: float = float("inf"),
    training_chars: float = float("inf"),
    seed: int = 0,
) -> dict:
    """Overlap of each held-out split's jsonl documents with each training split's and with all of them.

    Every split is read whole when its files hold at most ``heldout_chars`` / ``training_chars``
    characters, else a seeded sample of its documents of about that size. Returns ``{"ngram",
    "heldout": {split: {"documents", "of_documents", "characters", "fraction"}}, "training": {the same},
    "overlap": {held-out split: {label or "all": {"characters", "covered": {training split or "all":
    fraction of those characters}}}}}``.
    """
    held_counts = {split: SampleCount() for split in heldout}
    train_counts = {split: SampleCount() for split in training}
    fractions = {split: sample_fraction(paths, heldout_chars) for split, paths in heldout.items()}
    fractions |= {split: sample_fraction(paths, training_chars) for split, paths in training.items()}
    stream = {split: (seed, j) for j, split in enumerate([*heldout, *training])}  # a sample stream per split
    windows = {
        split: HeldoutWindows.from_documents(sample_documents(paths, fractions[split], stream[split], held_counts[split]), n)
        for split, paths in heldout.items()
    }
    for split, paths in training.items():
        docs = sample_documents(paths, fractions[split], stream[split], train_counts[split])
        for hashes in training_hashes((d["text"] for d in docs), n):
            for w in windows.values():
                w.mark(hashes, split)
    overlap: dict[str, dict] = {}
    for split, w in windows.items():
        columns = {ALL: w.coverage(list(training)), **{source: w.coverage([source]) for source in training}}
        overlap[split] = {
            name: {"characters": total, "covered": {c: cov[name][0] / total if total else 0.0 for c, cov in columns.items()}}
            for name, (_, total) in columns[ALL].items()
        }

    def counts(c: SampleCount, split: str) -> dict:
        return {**c.__dict__, "fraction": fractions[split]}

    return {
        "ngram": n,
        "heldout": {split: counts(c, split) for split, c in held_counts.items()},
        "training": {split: counts(c, split) for split, c in train_counts.items()},
        "overlap": overlap,
    }


_SPLIT_NAMES = {"heldout_web": "held-out web", "heldout_hq": "held-out problem/solution"}


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def overlap_markdown(result: Mapping, run: str) -> str:
    """The table of :func:`measure_overlap`: held-out split x label rows, training split columns."""
    n = result["ngram"]
    training = list(result["training"])
    sampled = [s for s, c in {**result["heldout"], **result["training"]}.items() if c["fraction"] < 1.0]

    def read(counts: Mapping) -> str:
        return ", ".join(
            f"{s} {c['documents']:,} of {c['of_documents']:,} documents ({c['characters']:,} characters)"
            for s, c in counts.items()
        )

    lines = [
        f"Held-out text that also occurs verbatim in the training text, run `{run}`: the share of held-out "
        f"characters that lie inside a run of {n} characters found in a training document (column: of that "
        f"training split; `{ALL}`: of any). Rows: each held-out split, over all its characters and per "
        f"ground-truth label where the documents carry labels. Read: held-out {read(result['heldout'])}; "
        f"training {read(result['training'])}."
        + (
            f" Sampled by document: {', '.join(sampled)}; a sampled training split gives a lower bound (a run "
            f"that occurs r times in a split read at fraction f is missed with probability (1 - f)^r)."
            if sampled
            else " Every document was read: the figures are exact."
        ),
        "",
        f"| held-out | text | characters | {ALL} training | " + " | ".join(training) + " |",
        "|" + "---|" * (4 + len(training)),
    ]
    for split, rows in result["overlap"].items():
        for name, row in sorted(rows.items(), key=lambda kv: kv[0] != ALL):
            cells = [_pct(row["covered"][ALL]), *(_pct(row["covered"][s]) for s in training)]
            lines.append(f"| {split} | {name} | {row['characters']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def overlap_sentence(result: Mapping) -> str:
    """One sentence for the held-out loss table: how much of each held-out split the training text holds."""
    parts = [
        f"{_pct(rows[ALL]['covered'][ALL])} of {_SPLIT_NAMES.get(split, split)} characters"
        for split, rows in result["overlap"].items()
        if ALL in rows
    ]
    lower = any(c["fraction"] < 1.0 for c in result["training"].values())
    return (
        f"{' and '.join(parts)} lie inside a run of {result['ngram']} characters that also occurs in the training "
        f"text{' (a lower bound from sampled training text)' if lower else ''}; `heldout_overlap.md` has it per "
        "label and training split."
    )
