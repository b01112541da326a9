"""The training curve: loss and kept fraction against the step, from the trainer's JSONL log."""

from __future__ import annotations

import json
from pathlib import Path

from rhocluster.common.atomic import atomic_path


def read_log(path: Path) -> list[dict]:
    """Records of a training log (one JSON object per line); a bad line raises naming file and line."""
    records = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not JSON: {err}") from err
    return records


def plot_training_log(log_path: Path, png_path: Path, title: str = "") -> None:
    """Write ``png_path``: training loss (all tokens and kept tokens) and kept fraction vs step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    fig, (ax_loss, ax_kept) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True, height_ratios=[2, 1])
    if records:
        steps = [r["step"] for r in records]
        ax_loss.plot(steps, [r["loss"] for r in records], label="loss, all tokens")
        if any(r.get("loss_kept") != r["loss"] for r in records if "loss_kept" in r):
            ax_loss.plot(steps, [r.get("loss_kept", float("nan")) for r in records], label="loss, kept tokens")
        ax_kept.plot(steps, [r["kept_fraction"] for r in records], color="tab:green")
        ax_loss.legend()
    else:
        ax_loss.text(0.5, 0.5, "no training steps", ha="center", va="center", transform=ax_loss.transAxes)
    ax_loss.set_ylabel("cross-entropy (nats)")
    ax_kept.set_ylabel("kept fraction")
    ax_kept.set_ylim(0, 1.05)
    ax_kept.set_xlabel("optimizer step")
    ax_loss.set_title(title or Path(log_path).parent.name)
    for ax in (ax_loss, ax_kept):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
