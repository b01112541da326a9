"""Generated corpora for the offline tiny run: a noisy "math web", a clean problem set and a
generic pretraining mix.

Every generator is a pure function of ``(n_docs, seed)``: document ``i`` is drawn from its
own ``random.Random`` seeded with a string naming the corpus, the seed and ``i`` (string
seeds are hashed with SHA-512, so results do not depend on ``PYTHONHASHSEED``), which also
makes the first ``k`` documents identical whatever ``n_docs`` is.

The math content is templated but compositional (many names, objects, numbers, phrasings;
answers are computed, never looked up) so that a small LM has to learn the patterns the
evaluation uses ("Question: ...\\nAnswer: ... The answer is N.", "Problem:\\n...\\nSolution:\\n
... \\boxed{N}", "Answer Choices: (A) ... The answer is (B).") rather than memorise strings.

Modules by concern: :mod:`~rhocluster.corpus.synthetic_words` (vocabulary),
:mod:`~rhocluster.corpus.synthetic_math` (problems and their formats),
:mod:`~rhocluster.corpus.synthetic_web` (the blocks of a web page),
:mod:`~rhocluster.corpus.synthetic_heldout` (the held-out documents' own templates); this module
assembles documents. ``templates="heldout"`` writes pages and problem sets from templates, sites and
problem generators that no training document uses (:data:`TEMPLATES`), so held-out text shares the
training text's kind and format but not its strings.
The mapping of character-span labels onto tokens is :func:`rhocluster.corpus.labels.label_token_spans`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from rhocluster.corpus.labels import FOOTER, JUNK, MATH, NAVIGATION
from rhocluster.corpus.synthetic_heldout import HELDOUT_TEMPLATES
from rhocluster.corpus.synthetic_math import fmt_gsm, fmt_math, fmt_mc
from rhocluster.corpus.synthetic_web import TRAIN_TEMPLATES, Templates, math_block, noise_block, offtopic_prose
from rhocluster.corpus.synthetic_words import CITIES, COUNTABLES, DAYS, MONTHS, cap, person, two_people

__all__ = ["generate_math_web", "generate_hq_math", "generate_pretrain", "generate_split", "TEMPLATES", "SPLITS"]

TEMPLATES: dict[str, Templates] = {"train": TRAIN_TEMPLATES, "heldout": HELDOUT_TEMPLATES}
"""Disjoint template pools: ``train`` for every corpus a model trains on, ``heldout`` for held-out text."""

SPLITS: dict[str, int] = {"web": 0, "hq": 1, "pretrain": 2, "heldout_web": 3, "heldout_hq": 4}
"""Corpus splits of the tiny run and the index that offsets their seeds."""


def _rng(corpus: str, seed: int, i: int) -> random.Random:
    return random.Random(f"rhocluster/{corpus}/{seed}/{i}")


def _stream(corpus: str, templates: str) -> str:
    """Name of a corpus' random streams: the training names are kept, so training text never changes."""
    if templates not in TEMPLATES:
        raise ValueError(f"unknown templates {templates!r}; expected one of {sorted(TEMPLATES)}")
    return corpus if templates == "train" else f"{corpus}-{templates}"


def _join_segments(segments: list[tuple[int, str]], r: random.Random) -> tuple[str, list[list[int]]]:
    """Concatenate labelled segments and return the text with its covering spans.

    The whitespace that separates two segments is given to the FOLLOWING segment, so every
    span except the first starts with whitespace and ends on a visible character.  Byte-level
    BPE tokens carry their leading space (" word"), hence a token's first character and its
    first non-space character then fall into the same span, whichever rule is applied.
    """
    parts: list[str] = []
    spans: list[list[int]] = []
    pos = 0
    for k, (label, body) in enumerate(segments):
        if k:
            # Junk and emoji are often glued onto the previous line; otherwise blank lines.
            if label == JUNK and r.random() < 0.3:
                sep = " "
            elif label == MATH and segments[k - 1][0] == MATH:
                sep = "\n\n"  # keep separate problems apart, as the evaluation prompts do
            else:
                sep = r.choice(["\n\n", "\n\n", "\n"])
            body = sep + body
        if spans and spans[-1][2] == label:
            spans[-1][1] = pos + len(body)  # merge neighbours with the same label
        else:
            spans.append([pos, pos + len(body), label])
        parts.append(body)
        pos += len(body)
    return "".join(parts), spans


def _math_web_doc(r: random.Random, t: Templates) -> tuple[str, list[list[int]]]:
    site = r.choice(t.sites)
    # Target share of noise characters for this page; header and footer come on top, so
    # the realised share is somewhat higher and varies widely from page to page.
    target = r.uniform(0.05, 0.45)
    header: list[tuple[int, str]] = [(NAVIGATION, site.nav)]
    if r.random() < 0.5:
        header.append((NAVIGATION, t.nav_snippet(r, site)))
    body = [(MATH, math_block(r, t)) for _ in range(r.randint(3, 7))]
    footer = [(FOOTER, f) for f in site.footers]
    if r.random() < 0.5:
        cookie = (FOOTER, r.choice(t.cookie_notices))
        if r.random() < 0.5:
            header.insert(0, cookie)  # cookie banners often sit at the top of the page
        else:
            footer.insert(0, cookie)
    math_chars = sum(len(t) for _, t in body)
    noise_chars = sum(len(t) for _, t in header + footer)
    budget = target / (1.0 - target) * math_chars
    while noise_chars < budget:
        block = noise_block(r, site, t)
        # Insert between body blocks (never before the first, so pages open with their menu).
        body.insert(r.randint(1, len(body)), block)
        noise_chars += len(block[1])
    return _join_segments(header + body + footer, r)


def generate_math_web(n_docs: int, seed: int, templates: str = "train") -> list[dict]:
    """Scraped-looking math web pages with a ground-truth label for every character, written from the
    ``templates`` pools (:data:`TEMPLATES`).

    Returns ``[{"id", "text", "spans"}]``; ``spans`` is a list of ``[start, end, label_id]``
    (ids index :data:`rhocluster.corpus.labels.LABELS`) that tile ``text`` exactly: the first
    starts at 0, each starts where the previous one ends, the last ends at ``len(text)``, and
    neighbouring spans have different labels.  Inter-segment whitespace belongs to the span
    that follows it.  Overall roughly a third of the characters are noise.
    """
    name, t = _stream("mathweb", templates), TEMPLATES[templates]
    docs = []
    for i in range(n_docs):
        text, spans = _math_web_doc(_rng(name, seed, i), t)
        docs.append({"id": f"{name}-{seed}-{i:06d}", "text": text, "spans": spans})
    return docs


def generate_hq_math(n_docs: int, seed: int, templates: str = "train") -> list[dict]:
    """Clean problem/solution text in exactly the evaluation formats (reference-model data), from the
    ``templates`` problem generators (:data:`TEMPLATES`).

    Each document holds 2-6 examples separated by a blank line, each one of
    ``"Question: ...\\nAnswer: ... The answer is N."``, ``"Problem:\\n...\\nSolution:\\n...
    \\boxed{N}..."`` or the multiple-choice ``"Answer Choices: (A) ... The answer is (B)."``.
    """
    name, t = _stream("hq", templates), TEMPLATES[templates]
    docs = []
    for i in range(n_docs):
        r = _rng(name, seed, i)
        examples = []
        for _ in range(r.randint(2, 6)):
            kind = r.choices(["gsm", "math", "mc"], weights=[5, 3, 2])[0]
            if kind == "gsm":
                p = r.choice(t.word_problems + t.algebra[:2])(r)
                examples.append(fmt_gsm(p, r))
            elif kind == "math":
                p = r.choice(t.algebra + t.word_problems[:4])(r)
                examples.append(fmt_math(p, r))
            else:
                p = r.choice(t.word_problems + t.algebra)(r)
                examples.append(fmt_mc(p, r) if p.numeric is not None else fmt_math(p, r))
        docs.append({"id": f"{name}-{seed}-{i:06d}", "text": "\n\n".join(examples)})
    return docs


_ANIMALS = ("fox", "owl", "rabbit", "dolphin", "beaver", "hedgehog", "eagle", "otter", "deer", "squirrel", "whale", "badger")
_HABITATS = ("forests", "rivers", "mountains", "grasslands", "the ocean", "wetlands", "deserts", "coastal cliffs")
_FOODS = ("insects", "berries", "fish", "seeds", "leaves", "small mammals", "roots", "nuts")
_STORY_PLACES = ("the market", "the library", "the park", "the harbor", "her aunt's farm", "the old mill", "the train station",
                 "the museum", "the bakery", "the beach")
_STORY_THINGS = ("a red umbrella", "an old map", "a lost puppy", "a silver key", "a letter", "a kite", "a small wooden box",
                 "a broken bicycle", "a jar of honey", "a paper boat")


def _story(r: random.Random) -> str:
    (n, s, pos), (n2, _, _) = two_people(r)
    place, thing = r.choice(_STORY_PLACES), r.choice(_STORY_THINGS)
    pool = [
        f"One {r.choice(['morning', 'afternoon', 'evening'])} in {r.choice(MONTHS)}, {n} walked to {place}.",
        f"On the way, {s} found {thing} lying near the road.", f"{cap(s)} showed it to {pos} friend {n2}.",
        f"\"Where do you think it came from?\" asked {n2}.", f"They decided to ask the people at {place}.",
        f"Nobody knew, so {n} kept it safe at home.", f"The weather was {r.choice(['cold', 'warm', 'rainy', 'windy', 'bright'])}, and the streets of {r.choice(CITIES)} were quiet.",
        f"Later that week {n2} came back with an idea.", f"In the end, {n} learned that small things can matter a lot.",
        f"{cap(s)} smiled and went home for dinner.",
    ]
    k = r.randint(4, len(pool))
    idx = sorted(r.sample(range(len(pool)), k))  # keep the story's order
    return " ".join(pool[j] for j in idx)


def _fact(r: random.Random) -> str:
    a = r.choice(_ANIMALS)
    pool = [
        f"The {a} lives in {r.choice(_HABITATS)} and eats mostly {r.choice(_FOODS)}.",
        f"An adult {a} can weigh up to {r.randint(2, 90)} kilograms.", f"Young {a}s stay with their parents for several months.",
        f"Scientists have studied the {a} for many years.", f"Most {a}s are active at {r.choice(['night', 'dawn', 'dusk', 'midday'])}.",
        f"In winter, the {a} {r.choice(['grows a thicker coat', 'travels long distances', 'rests more', 'stores food'])}.",
        f"People in {r.choice(CITIES)} sometimes see a {a} near the edge of town.",
    ]
    return " ".join(r.sample(pool, r.randint(3, 6)))


def _letter(r: random.Random) -> str:
    (n, _, _), (n2, _, _) = two_people(r)
    return (f"Dear {n2},\n\nThank you for your letter. I am writing from {r.choice(CITIES)}, where it has been "
            f"{r.choice(['sunny', 'rainy', 'snowing', 'very windy'])} all week. "
            f"{r.choice(['School starts again on ' + r.choice(DAYS) + '.', 'We visited ' + r.choice(_STORY_PLACES) + ' yesterday.', 'My garden is finally growing.'])} "
            f"I hope to see you in {r.choice(MONTHS)}.\n\nBest wishes,\n{n}")


def _simple_math(r: random.Random) -> str:
    kind = r.randrange(4)
    if kind == 0:
        a, b = r.randint(1, 20), r.randint(1, 20)
        return f"{a} plus {b} equals {a + b}. {a + b} minus {b} equals {a}. We can write this as {a} + {b} = {a + b} and {a + b} - {b} = {a}."
    if kind == 1:
        k = r.randint(2, 9)
        return f"The {k} times table: " + ", ".join(f"{k} x {i} = {k * i}" for i in range(1, r.randint(6, 11)))
    if kind == 2:
        (n, s, _), obj = person(r), r.choice(COUNTABLES)
        a, b = r.randint(3, 20), r.randint(1, 9)
        return f"{n} had {a} {obj}. Then {s} got {b} more. Now {n} has {a} + {b} = {a + b} {obj}."
    start, step = r.randint(1, 10), r.randint(1, 5)
    return "Counting by " + str(step) + "s: " + ", ".join(str(start + step * i) for i in range(r.randint(5, 10))) + "."


def generate_pretrain(n_docs: int, seed: int) -> list[dict]:
    """Generic pretraining mix for the tiny base model: ~85% everyday prose (stories,
    animal facts, letters, news-like and recipe text), ~15% very simple arithmetic text.
    Deliberately none of the evaluation formats, so the base model starts weak at them."""
    docs = []
    for i in range(n_docs):
        r = _rng("pretrain", seed, i)
        parts = []
        for _ in range(r.randint(2, 5)):
            gen = r.choices([_story, _fact, _letter, offtopic_prose, _simple_math], weights=[4, 3, 1, 3, 2])[0]
            parts.append(gen(r))
        docs.append({"id": f"pretrain-{seed}-{i:06d}", "text": "\n\n".join(parts)})
    return docs


def generate_split(split: str, shard: int, synthetic: Mapping[str, int], seed: int) -> list[dict]:
    """Documents of one shard of a tiny-run corpus split (:data:`SPLITS`), sized by ``data.synthetic``.

    Each split and shard has its own generator seed (``seed * 1000 + 100 * split index + shard``); the
    held-out splits are written from the held-out templates as well, so they share no template, site or
    problem generator with any training split.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown corpus split {split!r}; expected one of {sorted(SPLITS)}")
    split_seed = seed * 1000 + SPLITS[split] * 100 + shard
    if split == "web":
        return generate_math_web(synthetic.get("web_docs_per_shard", 300), split_seed)
    if split == "heldout_web":
        return generate_math_web(synthetic["heldout_web_docs"], split_seed, templates="heldout")
    if split == "hq":
        return generate_hq_math(synthetic.get("hq_docs", 600), split_seed)
    if split == "heldout_hq":
        return generate_hq_math(synthetic["heldout_hq_docs"], split_seed, templates="heldout")
    return generate_pretrain(synthetic.get("pretrain_docs_per_shard", 600), split_seed)
