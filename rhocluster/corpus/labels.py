"""Ground-truth labels for character spans of the synthetic math-web corpus, and their mapping
onto tokens (:func:`label_token_spans`).

A label id is the index into :data:`LABELS`; ``"math"`` is id 0 so that "is this useful
content" is ``label == 0`` everywhere.  Label arrays are ``uint8``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LABELS: tuple[str, ...] = ("math", "prose", "navigation", "footer", "junk")
"""``math``: worked problems, equations, tables, definitions (the signal);
``prose``: off-topic text (recipes, sports, gossip); ``navigation``: menus, breadcrumbs,
post metadata; ``footer``: copyright lines and cookie notices repeated across pages;
``junk``: hashes, base64, tracking ids, markup debris, emoji runs."""

LABEL_ID: dict[str, int] = {name: i for i, name in enumerate(LABELS)}

MATH, PROSE, NAVIGATION, FOOTER, JUNK = (LABEL_ID[n] for n in LABELS)

NOISE_LABELS: tuple[int, ...] = tuple(i for i in range(len(LABELS)) if i != MATH)

NO_LABEL: int = 255
"""Label of tokens that cover no text (special tokens such as BOS/EOS/PAD, whose offsets
are ``(0, 0)``).  Exclude them before counting per-label fractions."""


def label_token_spans(
    offsets: Sequence[tuple[int, int]], spans: list[list[int]], text: str | None = None
) -> np.ndarray:
    """Label each token with the label of the span holding its first non-space character.

    ``offsets`` are the tokenizer's character offsets ``(start, end)``; ``spans`` the
    ``[start, end, label]`` tiling of the text.  Rule for a token that crosses a span
    border: it belongs entirely to the span of its first non-space character (tokens are
    predicted as a whole, and the leading space of " word" is not what the word is about).
    Whitespace-only tokens take the span of their first character.  Tokens with empty
    offsets (BOS/EOS/PAD) get :data:`NO_LABEL` (255).

    ``text`` is needed to see spaces; without it the token's first character is used,
    which is the same thing for :func:`rhocluster.corpus.synthetic.generate_math_web`
    output because separating whitespace always starts the following span.
    """
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    out = np.full(len(offs), NO_LABEL, dtype=np.uint8)
    if len(offs) == 0 or not spans:
        return out
    sp = np.asarray(spans, dtype=np.int64).reshape(-1, 3)
    starts = offs[:, 0].copy()
    real = offs[:, 1] > offs[:, 0]
    if text is not None and len(text):
        # next_visible[i] = first index >= i holding a non-space character (len(text) if none)
        space = np.fromiter((c.isspace() for c in text), dtype=bool, count=len(text))
        pos = np.where(space, len(text), np.arange(len(text)))
        next_visible = np.minimum.accumulate(pos[::-1])[::-1]
        first = next_visible[np.clip(starts, 0, len(text) - 1)]
        use = real & (first < offs[:, 1])  # whitespace-only tokens keep their own start
        starts[use] = first[use]
    idx = np.searchsorted(sp[:, 0], starts, side="right") - 1
    inside = real & (idx >= 0) & (starts < sp[np.clip(idx, 0, None), 1])
    out[inside] = sp[idx[inside], 2].astype(np.uint8)
    return out
