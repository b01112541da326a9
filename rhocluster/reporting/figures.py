"""Report figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state).

- accuracy per benchmark and model with bootstrap intervals (from ``ci.csv`` of the significance rule)
- training loss per variant, on all tokens and on the kept tokens (trainer logs)
- kept-token fraction over training per variant (trainer logs)
- cluster-size distribution per level of the token cluster tree (``sizes.npy``), with the corpus
  tokens per cluster before and after each cluster variant's selection (``summary_{variant}.json``)

Files are written atomically and byte-reproducibly (no timestamps in the metadata).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.colors
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rhocluster.common.atomic import atomic_path
from rhocluster.reporting.evals import load_train_log, read_json
from rhocluster.reporting.stats import AVG, LEVEL
from rhocluster.reporting.tables import COLUMNS, model_label

# One colour per model in every figure (tab10 order; new variants appended keep the old colours).
MODEL_ORDER = ("base", "reference", "ct", "rho1", "cluster", "cluster_excess", "random", "excess_static", "cluster_slm")
CI_COLUMNS = ("model", "benchmark", "accuracy", "ci_low", "ci_high")
VARIANT_STYLES = ("-", (0, (5, 3)), ":", "-.")


def model_color(model: str) -> str:
    """A fixed colour per model, so a model looks the same in every figure."""
    palette = matplotlib.colormaps["tab10"].colors
    i = MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER) + sum(map(ord, model))
    return matplotlib.colors.to_hex(palette[i % len(palette)])


def new_figure(width: float, height: float) -> Figure:
    """A figure (inches) on its own Agg canvas, independent of pyplot's global state."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: Path | str, dpi: int = 150) -> None:
    """Write ``fig`` to ``path`` (format from the suffix: png, svg or pdf) atomically and reproducibly."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}
    if fmt not in metadata:
        raise ValueError(f"{path}: figure format must be png, svg or pdf")
    with matplotlib.rc_context({"svg.hashsalt": "rho-cluster"}), atomic_path(path, path.suffix) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata[fmt])


def load_ci(path: Path | str) -> pd.DataFrame:
    """``ci.csv`` of the significance rule; fails naming the file when a column is missing."""
    ci = pd.read_csv(path)
    missing = [c for c in CI_COLUMNS if c not in ci.columns]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {', '.join(missing)}")
    return ci


def accuracy_figure(ci: pd.DataFrame, run: str, level: float = LEVEL) -> Figure:
    """Grouped bars: accuracy (%) per benchmark (and avg) per model, with interval error bars."""
    models = list(dict.fromkeys(ci["model"]))
    benches = list(dict.fromkeys(ci["benchmark"]))
    table = ci.set_index(["model", "benchmark"])
    fig = new_figure(max(8.0, 1.1 * len(benches) + 2.5), 4.6)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(models))
    x = np.arange(len(benches), dtype=float)
    for k, model in enumerate(models):
        rows = table.loc[model].reindex(benches)
        acc = rows["accuracy"].to_numpy(float)
        yerr = np.vstack([acc - rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float) - acc])
        ax.bar(
            x + (k - (len(models) - 1) / 2) * width,
            acc,
            width,
            yerr=np.clip(yerr, 0, None),
            capsize=2,
            color=model_color(model),
            label=model_label(model),
            error_kw={"elinewidth": 0.8, "ecolor": "0.2"},
        )
    if AVG in benches:
        ax.axvline(benches.index(AVG) - 0.5, color="0.6", linestyle=":", linewidth=1)
    ax.set_xticks(x, [COLUMNS.get(b, b) for b in benches])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, min(100.0, max(5.0, float(ci["ci_high"].max()) * 1.1)))
    ax.set_title(f"Few-shot CoT accuracy, run {run} (error bars: {100 * level:.0f}% bootstrap intervals)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", ncols=min(4, len(models)), loc="upper left")
    return fig


def _logs(logs: Mapping[str, Path | str]) -> dict[str, pd.DataFrame]:
    return {variant: load_train_log(path) for variant, path in logs.items()}


def loss_figure(logs: Mapping[str, Path | str], run: str) -> Figure:
    """Training loss per variant against the optimizer step: on all tokens, and on the kept tokens."""
    frames = _logs(logs)
    fig = new_figure(11.0, 4.0)
    ax_all, ax_kept = fig.subplots(1, 2, sharex=True, sharey=True)
    for variant, frame in frames.items():
        style = {"color": model_color(variant), "label": model_label(variant), "linewidth": 1.2}
        ax_all.plot(frame["step"], frame["loss"], **style)
        if "loss_kept" in frame:
            ax_kept.plot(frame["step"], frame["loss_kept"], **style)
    ax_all.set_title("loss on all tokens")
    ax_kept.set_title("loss on the kept tokens (the training objective)")
    for ax in (ax_all, ax_kept):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    ax_all.set_ylabel("cross-entropy (nats/token)")
    ax_all.legend(fontsize="small")
    fig.suptitle(f"Continued pretraining, run {run}")
    return fig


def kept_fraction_figure(logs: Mapping[str, Path | str], run: str, target: float | None = None) -> Figure:
    """Fraction of the batch's target tokens that the loss used, per logged step and variant."""
    frames = _logs(logs)
    fig = new_figure(7.5, 4.0)
    ax = fig.add_subplot()
    for variant, frame in frames.items():
        ax.plot(
            frame["step"], frame["kept_fraction"], color=model_color(variant), label=model_label(variant), linewidth=1.2
        )
    if target is not None:
        ax.axhline(target, color="0.4", linestyle="--", linewidth=1, label=f"budget {target:.0%}")
    ax.set_xlabel("step")
    ax.set_ylabel("kept fraction of the batch's tokens")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"Kept-token fraction over training, run {run}")
    return fig


def load_level_sizes(level_dir: Path | str) -> tuple[np.ndarray, dict]:
    """(int64 [k] sample tokens per cluster, summary.json) of one cluster level; checked against each other."""
    level_dir = Path(level_dir)
    summary = read_json(level_dir / "summary.json")
    sizes = np.load(level_dir / "sizes.npy")
    if "k" not in summary:
        raise ValueError(f"{level_dir / 'summary.json'}: lacks key k")
    if sizes.ndim != 1 or sizes.shape[0] != summary["k"]:
        raise ValueError(f"{level_dir / 'sizes.npy'}: shape {sizes.shape}, but summary.json says k={summary['k']}")
    return sizes.astype(np.int64), summary


def _rank_share(counts: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank 1.., share %) of the non-empty clusters, largest first."""
    c = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    c = c[c > 0]
    return np.arange(1, c.size + 1), 100.0 * c / max(c.sum(), 1.0)


def _selection_levels(path: Path | str, n_levels: int) -> list[dict]:
    """The per-level entries of a selection summary (``summary["levels"]["levels"]``), checked."""
    data = read_json(path)
    levels = data.get("levels", {}).get("levels") if isinstance(data.get("levels"), dict) else None
    keys = ("count_before", "count_after", "entropy_before_normalised", "entropy_after_normalised")
    if not isinstance(levels, list) or len(levels) != n_levels or any(k not in e for e in levels for k in keys):
        raise ValueError(f"{path}: expected levels.levels with {n_levels} entries holding {', '.join(keys)}")
    return levels


def cluster_figure(level_dirs: Sequence[Path | str], selections: Mapping[str, Path | str], run: str) -> Figure:
    """Per level (one panel each): share of tokens per cluster against its size rank (log scale), for
    the k-means sample and, from the selection summaries, the corpus before and after selection."""
    per_variant = {variant: _selection_levels(path, len(level_dirs)) for variant, path in selections.items()}
    fig = new_figure(4.2 * max(1, len(level_dirs)), 4.0)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(level_dirs)), squeeze=False)[0])
    for j, (ax, level_dir) in enumerate(zip(axes, level_dirs)):
        sizes, summary = load_level_sizes(level_dir)
        n_empty = int((sizes == 0).sum())
        ax.plot(*_rank_share(sizes), color="0.2", linewidth=1.5, label="k-means sample (sizes.npy)")
        for k, (variant, levels) in enumerate(per_variant.items()):
            entry = levels[j]
            if k == 0:
                ax.plot(*_rank_share(entry["count_before"]), color="0.6", linestyle="--", label="corpus, before selection")
            ax.plot(
                *_rank_share(entry["count_after"]),
                color=model_color(variant),
                linestyle=VARIANT_STYLES[k % len(VARIANT_STYLES)],  # variants with equal quotas overlap
                label=f"kept by {variant} (evenness {entry['entropy_before_normalised']:.2f} → "
                f"{entry['entropy_after_normalised']:.2f})",
            )
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("cluster rank (largest first)")
        ax.set_title(f"level {j + 1}: k={summary['k']}, {n_empty} empty")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small")
    axes[0].set_ylabel("share of tokens (%)")
    fig.suptitle(f"Token cluster sizes per level, run {run}")
    return fig


def write_figure(fig: Figure, path: Path | str) -> None:
    """Save and release ``fig``."""
    save_figure(fig, path)
    fig.clear()


def write_accuracy_figure(ci_csv: Path | str, out: Path | str, run: str) -> None:
    """Accuracy figure of ``ci.csv`` to ``out``."""
    write_figure(accuracy_figure(load_ci(ci_csv), run), out)


def write_training_figures(
    logs: Mapping[str, Path | str], loss_out: Path | str, kept_out: Path | str, run: str, target: float | None
) -> None:
    """Loss curves and kept-fraction curves of the variants' training logs."""
    write_figure(loss_figure(logs, run), loss_out)
    write_figure(kept_fraction_figure(logs, run, target), kept_out)


def write_cluster_figure(
    level_dirs: Sequence[Path | str], selections: Mapping[str, Path | str], out: Path | str, run: str
) -> None:
    """Cluster-size figure of the level directories and selection summaries."""
    write_figure(cluster_figure(level_dirs, selections, run), out)
