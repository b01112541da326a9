"""The token-representation ablation side by side: the `cluster` row of each run of
config/ablation/representation-*.yaml (docs/representation.md) next to `ct` and `random`, read from the
runs' own tables (held-out loss and kept fraction per label). Reads finished runs; runs nothing.

    python bench/representation_ablation.py tiny-repr-final-read=final/read tiny=middle/read ... [--out FILE]

Each argument is RUN=LABEL: results/RUN/tables/heldout.csv and labels.csv must exist. Rows of `ct` and
`random` are taken from the first run that has them (they do not depend on the representation).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("math", "web (all)", "problems")
LABELS = ("math", "prose", "navigation", "footer", "junk")


def _heldout(run_dir: Path) -> dict[tuple[str, str], dict]:
    """Mean token loss per (row, column) (tables without a ``metric`` column hold only that one)."""
    with open(run_dir / "tables" / "heldout.csv") as fh:
        return {(r["row"], r["column"]): r for r in csv.DictReader(fh) if r.get("metric", "token") == "token"}


def _kept(run_dir: Path) -> dict[str, dict]:
    with open(run_dir / "tables" / "labels.csv") as fh:
        return {r["variant"]: r for r in csv.DictReader(fh)}


def _cell(r: dict) -> str:
    return f"{float(r['estimate']):.3f} [{float(r['low']):.3f}, {float(r['high']):.3f}]"


def table(runs: list[tuple[str, str]], results: Path) -> str:
    """Markdown: one row per (run, label) for `cluster`, plus ct and random; held-out loss with intervals
    (over documents and seeds) and the kept fraction (%) of each ground-truth label."""
    head = ["row", "representation", *(f"held-out {c}" for c in COLUMNS), *(f"kept {lab} %" for lab in LABELS), "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    controls_done = False
    for run, label in runs:
        held, kept = _heldout(results / run), _kept(results / run)
        rows = [("cluster", label)]
        if not controls_done:
            rows += [(v, "–") for v in ("ct", "random") if (v, "math") in held]
            controls_done = True
        for variant, rep in rows:
            if (variant, "math") not in held:
                raise ValueError(f"{results / run}/tables/heldout.csv has no row {variant!r}")
            cells = [_cell(held[variant, c]) for c in COLUMNS]
            k = kept.get(variant, {})
            cells += [f"{float(k[lab]):.1f}" if k.get(lab) else "—" for lab in LABELS]
            lines.append(f"| {variant} | {rep} | " + " | ".join(cells) + f" | {held[variant, 'math']['seeds']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="RUN=LABEL")
    ap.add_argument("--results", type=Path, default=REPO / "results")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    runs = [tuple(a.split("=", 1)) for a in args.runs]
    md = table(runs, args.results)
    print(md, end="")
    if args.out:
        args.out.write_text(md)


if __name__ == "__main__":
    main()
