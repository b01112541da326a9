"""Inspection of the token cluster tree: what the clusters hold and what the selections keep.

Two products, both for a researcher rather than for the pipeline: a figure of the cluster-size
distribution at every level before and after each static selection, and pages of example tokens
from a handful of leaf clusters, each shown in its left context with kept/dropped marked, decoded
with the run's tokenizer. Reads one shard at a time (leaf ids and masks are memory-mapped).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from rhocluster.clustering.hierarchy import load_hierarchy
from rhocluster.common.atomic import atomic_path, save_text
from rhocluster.data.shards import Shard, load_aligned
from rhocluster.reporting.figures import model_color
from rhocluster.selection.masks import count_leaves, mask_summary

# Variants take their colour of every figure (reporting.figures.model_color).
# cluster and cluster_excess share their leaf quotas, so their curves coincide: tell them apart by style.
STYLES = {"cluster_excess": ("--", "x")}


@dataclass
class TreeCounts:
    """Corpus tokens per leaf (int64 [k1]) before selection and kept by each mask variant, plus ancestors [k1, L]."""

    ancestors: np.ndarray
    before: np.ndarray
    kept: dict[str, np.ndarray]

    def level(self, counts: np.ndarray, j: int) -> np.ndarray:
        """Aggregate leaf counts to the clusters of level ``j + 1`` (int64 [k_{j+1}])."""
        out = np.zeros(int(self.ancestors[:, j].max()) + 1, np.int64)
        np.add.at(out, self.ancestors[:, j], counts)
        return out


def _shards_and_leaves(shard_prefixes: Sequence[str], leaf_paths: Sequence[str]) -> list[tuple[Shard, np.ndarray]]:
    if len(shard_prefixes) != len(leaf_paths):
        raise ValueError(f"{len(shard_prefixes)} shards but {len(leaf_paths)} leaf-id files")
    out = []
    for prefix, path in zip(shard_prefixes, leaf_paths):
        shard = Shard(prefix)
        out.append((shard, load_aligned(path, shard.shape, np.int32, "leaf ids")))
    return out


def count_tree(
    shard_prefixes: Sequence[str],
    leaf_paths: Sequence[str],
    level_dirs: Sequence[str],
    masks: Mapping[str, Sequence[str]],
) -> TreeCounts:
    """Count corpus tokens per leaf, in total and under each variant's masks (one shard at a time)."""
    levels, ancestors = load_hierarchy([Path(d) for d in level_dirs])
    k1 = levels[0].k
    before = np.zeros(k1, np.int64)
    kept = {v: np.zeros(k1, np.int64) for v in masks}
    for i, (shard, leaf) in enumerate(_shards_and_leaves(shard_prefixes, leaf_paths)):
        before += count_leaves(leaf, k1)
        for v, paths in masks.items():
            mask = load_aligned(paths[i], shard.shape, np.uint8, f"{v} mask")
            kept[v] += count_leaves(leaf, k1, mask=np.asarray(mask, dtype=bool))
    return TreeCounts(ancestors, before, kept)


def cluster_size_figure(counts: TreeCounts, budget: float, run: str = ""):
    """Figure with one column per level: top, cluster sizes by rank before and after each selection;
    bottom, the kept fraction of each cluster against its size (balanced sampling keeps less of big clusters)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    n_levels = counts.ancestors.shape[1]
    summaries = {v: mask_summary(counts.before, k, counts.ancestors, per_cluster=False) for v, k in counts.kept.items()}
    fig, axes = plt.subplots(2, n_levels, figsize=(4.2 * n_levels, 7.0), squeeze=False)
    for j in range(n_levels):
        before = counts.level(counts.before, j)
        top, bottom = axes[0, j], axes[1, j]
        nz = before > 0
        first = next(iter(summaries.values()), None)
        h0 = first["levels"][j]["entropy_before_normalised"] if first else float("nan")
        top.plot(np.arange(1, nz.sum() + 1), np.sort(before[nz])[::-1], color="black", lw=2, label=f"all tokens (evenness {h0:.3f})")
        for v, kept in counts.kept.items():
            after = counts.level(kept, j)
            h1 = summaries[v]["levels"][j]["entropy_after_normalised"]
            color = model_color(v)
            ls, marker = STYLES.get(v, ("-", "o"))
            ranks = np.arange(1, nz.sum() + 1)
            top.plot(ranks, np.sort(after[nz])[::-1], color=color, ls=ls, lw=1.3, label=f"{v} ({h1:.3f})")
            frac = after[nz] / before[nz]
            bottom.scatter(before[nz], frac, s=12, alpha=0.7, color=color, marker=marker, label=v)
        top.set_yscale("log")
        top.set_xlabel("cluster rank (largest first)")
        top.set_ylabel("tokens")
        top.set_title(f"level {j + 1}: {int(nz.sum())} non-empty of {before.size} clusters")
        top.legend(fontsize=7, title="evenness = H / ln(k)", title_fontsize=7)
        bottom.axhline(budget, color="black", ls=":", lw=1, label=f"budget {budget:g}")
        bottom.set_xscale("log")
        bottom.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        top.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        bottom.set_ylim(-0.02, 1.02)
        bottom.set_xlabel("cluster size (tokens)")
        bottom.set_ylabel("kept fraction")
        bottom.legend(fontsize=7)
    fig.suptitle(f"Cluster sizes before and after selection{f' - run {run}' if run else ''}")
    fig.tight_layout()
    return fig


def save_png(fig, path: Path | str) -> None:
    """Save a figure as PNG atomically (no timestamps in the file, so bytes are reproducible)."""
    import matplotlib.pyplot as plt

    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def pick_clusters(before: np.ndarray, n: int) -> np.ndarray:
    """Leaves spread evenly over the size ranking (largest, ..., smallest non-empty), int64 [<= n]."""
    order = np.lexsort((np.arange(before.size), -before))
    order = order[before[order] > 0]
    if order.size == 0 or n <= 0:
        return np.zeros(0, np.int64)
    ranks = np.unique(np.round(np.linspace(0, order.size - 1, min(n, order.size))).astype(np.int64))
    return order[ranks]


@dataclass
class Example:
    """One example token: where it is, its context pieces and, per variant, kept (1), dropped (0) or not a target (-1)."""

    shard: int
    window: int
    position: int
    pieces: list[str]
    focus: int
    status: dict[str, list[int]]
    label: str | None = None


@dataclass
class ClusterExamples:
    """Examples and statistics of one leaf cluster."""

    leaf: int
    ancestors: list[int]
    tokens: int
    share: float
    kept_fraction: dict[str, float]
    top_tokens: list[tuple[str, float]]
    labels: list[tuple[str, float]] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)


def token_pieces(tokenizer, ids: Sequence[int]) -> list[str]:
    """Text of each token as it reads in context (leading spaces kept), by incremental decoding.

    A byte-level token that leaves a multi-byte character incomplete gets "" and the character goes
    to the token that completes it, so the pieces join to the decoded text.
    """
    pieces, committed = [], ""
    for i in range(len(ids)):
        text = tokenizer.decode(list(ids[: i + 1]), skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if text.endswith("\ufffd") and i + 1 < len(ids):
            pieces.append("")
            continue
        if text.startswith(committed):
            pieces.append(text[len(committed) :])
        else:  # decoding is not prefix-stable here: show the token on its own
            pieces.append(tokenizer.decode([int(ids[i])], skip_special_tokens=False))
        committed = text
    return pieces


def collect_examples(
    counts: TreeCounts,
    shard_prefixes: Sequence[str],
    leaf_paths: Sequence[str],
    masks: Mapping[str, Sequence[str]],
    tokenizer,
    *,
    n_clusters: int = 6,
    per_cluster: int = 6,
    left: int = 24,
    right: int = 4,
    top_tokens: int = 10,
    seed: int = 0,
) -> list[ClusterExamples]:
    """Example tokens (seeded) of ``n_clusters`` leaves spread over the size ranking, with context and statistics."""
    leaves = pick_clusters(counts.before, n_clusters)
    total = max(1, int(counts.before.sum()))
    pairs = _shards_and_leaves(shard_prefixes, leaf_paths)
    cands: dict[int, list[np.ndarray]] = {int(c): [] for c in leaves}
    tok_hist: dict[int, dict[int, int]] = {int(c): {} for c in leaves}
    lab_hist: dict[int, np.ndarray] = {int(c): np.zeros(256, np.int64) for c in leaves}
    has_labels = all(shard.meta.has_labels for shard, _ in pairs)
    for i, (shard, leaf) in enumerate(pairs):
        flat = np.asarray(leaf).reshape(-1)
        hit = np.flatnonzero(np.isin(flat, leaves))
        if hit.size == 0:
            continue
        tokens = shard.windows().reshape(-1)
        labels = shard.labels().reshape(-1) if has_labels else None
        for c in cands:
            pos = hit[flat[hit] == c]
            cands[c].append(np.stack([np.full(pos.size, i, np.int64), pos], axis=1))
            ids, n = np.unique(tokens[pos], return_counts=True)
            for t, m in zip(ids.tolist(), n.tolist()):
                tok_hist[c][t] = tok_hist[c].get(t, 0) + m
            if labels is not None:
                lab_hist[c] += np.bincount(labels[pos], minlength=256)
    label_names = _label_names() if has_labels else None
    out = []
    for c in cands:
        allpos = np.concatenate(cands[c]) if cands[c] else np.zeros((0, 2), np.int64)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(c,)))
        pick = np.sort(rng.choice(len(allpos), size=min(per_cluster, len(allpos)), replace=False))
        n_c = int(counts.before[c])
        hist = sorted(tok_hist[c].items(), key=lambda kv: (-kv[1], kv[0]))[:top_tokens]
        info = ClusterExamples(
            leaf=c,
            ancestors=[int(a) for a in counts.ancestors[c, 1:]],
            tokens=n_c,
            share=n_c / total,
            kept_fraction={v: float(k[c] / n_c) if n_c else float("nan") for v, k in counts.kept.items()},
            top_tokens=[(tokenizer.decode([t], skip_special_tokens=False), m / n_c) for t, m in hist],
        )
        if label_names is not None:
            lab = lab_hist[c]
            info.labels = [(label_names.get(j, str(j)), lab[j] / n_c) for j in np.flatnonzero(lab)]
        for s_idx, flat_pos in allpos[pick]:
            shard, _ = pairs[int(s_idx)]
            w, t = divmod(int(flat_pos), shard.seq_len)
            lo, hi = max(0, t - left), min(shard.seq_len, t + right + 1)
            window = shard.window(w)
            status = {}
            for v, paths in masks.items():
                m = np.asarray(load_aligned(paths[int(s_idx)], shard.shape, np.uint8, f"{v} mask")[w, lo:hi], dtype=int)
                if lo == 0:
                    m[0] = -1  # position 0 of a window is never a target
                status[v] = m.tolist()
            label = None
            if label_names is not None:
                label = label_names.get(int(shard.labels()[w, t]), "none")
            info.examples.append(
                Example(int(s_idx), w, t, token_pieces(tokenizer, window[lo:hi].tolist()), t - lo, status, label)
            )
        out.append(info)
    return out


def _label_names() -> dict[int, str]:
    from rhocluster.corpus.labels import LABELS, NO_LABEL

    return {**dict(enumerate(LABELS)), NO_LABEL: "special"}


_EMPTY = "\u00b7"  # shown for a token that is part of a multi-byte character


def _visible(piece: str) -> str:
    """Make newlines, tabs and empty pieces (part of a multi-byte character) visible."""
    if piece == "":
        return _EMPTY
    return piece.replace("\n", "\u23ce\n").replace("\t", "\u21e5")


_CSS = """
body { font-family: sans-serif; margin: 1.5em; max-width: 70em; }
.ctx { font-family: monospace; white-space: pre-wrap; line-height: 1.8; }
.k { background: #c8ecc8; } .d { background: #f6d0d0; color: #777; } .n { color: #aaa; }
.f { outline: 2px solid #222; font-weight: bold; }
table { border-collapse: collapse; margin-bottom: 1.5em; } td, th { border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; }
.legend span { padding: 2px 6px; margin-right: 8px; }
"""


def render_html(clusters: Sequence[ClusterExamples], primary: str, run: str = "") -> str:
    """Self-contained HTML: per cluster its statistics and examples; context tokens shaded kept/dropped by ``primary``."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Cluster examples {esc(run)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Token clusters: examples{' - run ' + esc(run) if run else ''}</h1>",
        "<p class='legend'>Context shaded by the <b>" + esc(primary) + "</b> mask: "
        "<span class='k'>kept</span><span class='d'>dropped</span><span class='n'>not a target</span>"
        "<span class='f'>example token</span></p>",
    ]
    for c in clusters:
        anc = " &rarr; ".join(f"L{j + 2}:{a}" for j, a in enumerate(c.ancestors))
        kept = ", ".join(f"{esc(v)} {f:.0%}" for v, f in c.kept_fraction.items())
        top = " ".join(f"<code>{esc(_visible(t))}</code>&nbsp;{f:.0%}" for t, f in c.top_tokens)
        parts.append(f"<h2>Leaf {c.leaf} {('(' + anc + ')') if anc else ''}</h2>")
        parts.append(f"<p>{c.tokens} tokens ({c.share:.2%} of the corpus); kept: {kept}.<br>Most frequent: {top}</p>")
        if c.labels:
            parts.append("<p>Ground-truth labels: " + ", ".join(f"{esc(n)} {f:.0%}" for n, f in c.labels) + "</p>")
        variants = list(c.kept_fraction)
        head = "".join(f"<th>{esc(v)}</th>" for v in variants)
        label_head = "<th>label</th>" if any(e.label for e in c.examples) else ""
        parts.append(f"<table><tr><th>shard/window:pos</th><th>context</th>{head}{label_head}</tr>")
        for e in c.examples:
            spans = []
            for j, piece in enumerate(e.pieces):
                st = e.status[primary][j] if primary in e.status else None
                cls = {1: "k", 0: "d", -1: "n", None: ""}[st] + (" f" if j == e.focus else "")
                spans.append(f"<span class='{cls}'>{esc(_visible(piece))}</span>")
            cells = "".join(
                f"<td>{'kept' if e.status[v][e.focus] == 1 else 'dropped'}</td>" for v in variants if v in e.status
            )
            label = f"<td>{esc(e.label)}</td>" if label_head else ""
            parts.append(
                f"<tr><td>{e.shard}/{e.window}:{e.position}</td><td class='ctx'>{''.join(spans)}</td>{cells}{label}</tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "⏎").replace("`", "'")


def render_markdown(clusters: Sequence[ClusterExamples], run: str = "") -> str:
    """Markdown version: the example token in ⟦ ⟧ inside its context, kept/dropped per variant in columns."""
    lines = [f"# Token clusters: examples{' - run ' + run if run else ''}", ""]
    for c in clusters:
        anc = " → ".join(f"L{j + 2}:{a}" for j, a in enumerate(c.ancestors))
        lines.append(f"## Leaf {c.leaf}{' (' + anc + ')' if anc else ''}")
        lines.append("")
        kept = ", ".join(f"{v} {f:.0%}" for v, f in c.kept_fraction.items())
        lines.append(f"{c.tokens} tokens ({c.share:.2%} of the corpus); kept: {kept}.")
        lines.append("Most frequent: " + ", ".join(f"`{_md_cell(t)}` {f:.0%}" for t, f in c.top_tokens))
        if c.labels:
            lines.append("Ground-truth labels: " + ", ".join(f"{n} {f:.0%}" for n, f in c.labels))
        lines.append("")
        variants = list(c.kept_fraction)
        lines.append("| where | context | " + " | ".join(variants) + " |")
        lines.append("|---|---|" + "---|" * len(variants))
        for e in c.examples:
            ctx = "".join(
                f"**⟦{_md_cell(p) or _EMPTY}⟧**" if j == e.focus else _md_cell(p) for j, p in enumerate(e.pieces)
            )
            marks = " | ".join(("kept" if e.status[v][e.focus] == 1 else "dropped") for v in variants)
            lines.append(f"| {e.shard}/{e.window}:{e.position} | {ctx} | {marks} |")
        lines.append("")
    return "\n".join(lines)


def inspect_clusters(
    shard_prefixes: Sequence[str],
    leaf_paths: Sequence[str],
    level_dirs: Sequence[str],
    masks: Mapping[str, Sequence[str]],
    tokenizer_dir: str | Path,
    out_figure: str | Path,
    out_html: str | Path,
    out_markdown: str | Path,
    *,
    budget: float,
    n_clusters: int = 6,
    per_cluster: int = 6,
    left: int = 24,
    right: int = 4,
    seed: int = 0,
    run: str = "",
) -> dict:
    """The inspect_clusters stage: size figure (PNG), examples (HTML and Markdown). Returns a small summary."""
    from transformers import AutoTokenizer

    counts = count_tree(shard_prefixes, leaf_paths, level_dirs, masks)
    save_png(cluster_size_figure(counts, budget, run), out_figure)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    clusters = collect_examples(
        counts,
        shard_prefixes,
        leaf_paths,
        masks,
        tokenizer,
        n_clusters=n_clusters,
        per_cluster=per_cluster,
        left=left,
        right=right,
        seed=seed,
    )
    primary = next((v for v in ("cluster", "cluster_excess") if v in masks), next(iter(masks), ""))
    save_text(out_html, render_html(clusters, primary, run))
    save_text(out_markdown, render_markdown(clusters, run))
    return {"leaves": [c.leaf for c in clusters], "variants": list(masks), "tokens": int(counts.before.sum())}
