"""Ground-truth labels for character spans of the synthetic math-web corpus.

A label id is the index into :data:`LABELS`; ``"math"`` is id 0 so that "is this useful
content" is ``label == 0`` everywhere.  Label arrays are ``uint8``.
"""

from __future__ import annotations

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
