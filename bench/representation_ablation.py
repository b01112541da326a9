"""The token-representation ablation side by side (docs/representation.md): the `cluster` row of each run
of config/ablation/representation-*.yaml next to `ct`, read from the runs' own tables (held-out loss in
both metrics, kept fraction per label), and the paired differences between the representations, seed i
of one against seed i of another on the same resampled held-out documents. Reads finished runs; runs
nothing.

    PYTHONPATH=$PWD python bench/representation_ablation.py tiny-repr-middle-read=middle/read \\
        tiny-repr-final-read=final/read tiny-repr-final-predict=final/predict \\
        tiny-repr-middle-predict=middle/predict --page docs/representation.md

Each argument is RUN=LABEL (LABEL: LAYER/POSITION); the first is the counterpart of every pair, then
every other two in argument order. results/RUN/tables/heldout.csv and labels.csv must exist, and the runs
must have scored the same held-out documents: their held-out shards and tokenizers are compared byte by
byte and the script refuses runs that differ. The pairs come from the per-document losses
(results/RUN/heldout/{model}/{split}/{shard}.loss.npy) through rhocluster.reporting.heldout_tables, and the
per-representation losses recomputed from them must equal each run's own heldout.csv. `--page` rewrites
the span between the page's representation-ablation markers; `--out` writes the Markdown to a file;
without either it is printed.
"""

from __future__ import annotations

import argparse
import csv
import filecmp
from itertools import combinations
from pathlib import Path
from typing import Sequence

import pandas as pd
import yaml

from rhocluster.corpus.labels import LABELS
from rhocluster.reporting.heldout_tables import (
    TOKEN,
    TYPE,
    heldout_tables,
    load_columns,
    losses_markdown,
    pairs_markdown,
    pairs_prose,
)
from rhocluster.reporting.stats import LEVEL
from rhocluster.workflow.variants import Pair, replicate_name

REPO = Path(__file__).resolve().parents[1]
START = "<!-- representation-ablation:start -->"
END = "<!-- representation-ablation:end -->"
SPLITS = ("heldout_web", "heldout_hq")
SHARD_SUFFIXES = (".bin", ".idx", ".labels.npy")
ROW = "cluster"  # the row the representation changes
CONTROLS = ("ct", "random")  # rows that do not depend on it, taken from the first run that has them
TOLERANCE = 1e-4  # recomputed estimate vs heldout.csv (written with 5 decimals)


def heldout_shards(run_dir: Path) -> dict[str, list[str]]:
    """{split: shard names} of a run's held-out shards (``shards/{split}/{name}.bin``), sorted."""
    return {
        split: names
        for split in SPLITS
        if (names := sorted(p.name[: -len(".bin")] for p in (run_dir / "shards" / split).glob("*.bin")))
    }


def _files(run_dir: Path, shards: dict[str, list[str]]) -> list[Path]:
    """The held-out shard files and tokenizer files of a run, relative to it, that must be identical."""
    out = [Path("shards", split, name + suffix) for split, names in shards.items() for name in names for suffix in SHARD_SUFFIXES]
    tokenizer = run_dir / "tokenizer"
    out += sorted(p.relative_to(run_dir) for p in tokenizer.rglob("*") if p.is_file()) if tokenizer.is_dir() else []
    return [p for p in out if (run_dir / p).exists()]


def check_same_heldout(results: Path, runs: Sequence[str]) -> dict[str, list[str]]:
    """The held-out shard names shared by ``runs``; ValueError unless every run has the same held-out shards
    and tokenizer, byte for byte (the documents a paired difference resamples must be the same)."""
    first = results / runs[0]
    shards = heldout_shards(first)
    if not shards:
        raise ValueError(f"{first}/shards: no held-out shards (heldout_web/*.bin, heldout_hq/*.bin)")
    files = _files(first, shards)
    for run in runs[1:]:
        other = results / run
        if heldout_shards(other) != shards:
            raise ValueError(f"{other}: its held-out shards {heldout_shards(other)} are not {first}'s {shards}")
        if (theirs := _files(other, shards)) != files:
            raise ValueError(f"{other}: held-out or tokenizer files {sorted(set(theirs) ^ set(files))} differ from {first}'s")
        for rel in files:
            if not filecmp.cmp(first / rel, other / rel, shallow=False):
                raise ValueError(f"{other / rel} differs from {first / rel}: the runs scored different held-out text")
    return shards


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _n_seeds(held: list[dict[str, str]], row: str, path: Path) -> int:
    seeds = {r["seeds"] for r in held if r["row"] == row}
    if len(seeds) != 1:
        raise ValueError(f"{path}: no row {row!r}" if not seeds else f"{path}: row {row!r} has seeds {sorted(seeds)}")
    return int(seeds.pop())


def representation_factor(variant: str, counterpart: str) -> str:
    """What two LAYER/POSITION labels differ in: 'final layer instead of middle', 'predict position
    instead of read', both joined by 'and'; 'representation' for labels of another form."""
    a, b = variant.split("/"), counterpart.split("/")
    if len(a) != 2 or len(b) != 2:
        return "representation"
    parts = [f"{x} {what} instead of {y}" for x, y, what in zip(a, b, ("layer", "position")) if x != y]
    return " and ".join(parts) or "the same representation"


def _ct_sentence(results: Path, runs: Sequence[str], shards: dict[str, list[str]]) -> str:
    """Whether ct's held-out loss files (every seed) are byte-identical in every run."""
    first = results / runs[0] / "heldout"
    files = sorted(p.relative_to(first) for p in first.glob("ct*/*/*.loss.npy"))
    if not files:
        return ""
    differ = [run for run in runs[1:] if not all(
        (results / run / "heldout" / f).exists() and filecmp.cmp(first / f, results / run / "heldout" / f, shallow=False)
        for f in files
    )]  # fmt: skip
    if not differ:
        return (f"`ct`'s held-out loss files (every seed and split: {len(files)} files) are byte-identical in all "
                f"{len(runs)} runs: it does not depend on the representation.")  # fmt: skip
    return f"`ct`'s held-out loss files differ from run `{runs[0]}`'s in run(s) {', '.join(f'`{r}`' for r in differ)}."


def ablation_markdown(
    results: Path,
    runs: Sequence[tuple[str, str]],
    eos_id: int,
    n_resamples: int,
    seed: int,
    level: float = LEVEL,
    command: str = "",
) -> str:
    """The generated block: held-out loss (both metrics) of `cluster` per representation (and the control
    rows) from each run's heldout.csv, the kept fraction per label from labels.csv, the paired differences
    between representations (one per two of them, the first run's representation the counterpart of the
    first ones) and one sentence per pair read off them."""
    names = [run for run, _ in runs]
    labels = [label for _, label in runs]
    if len(set(labels)) != len(labels) or len(set(names)) != len(names):
        raise ValueError(f"runs and labels must be distinct: {list(runs)}")
    shards = check_same_heldout(results, names)
    held = {run: _rows(results / run / "tables" / "heldout.csv") for run in names}
    kept = {run: {r["variant"]: r for r in _rows(results / run / "tables" / "labels.csv")} for run in names}

    # the per-representation rows, as the runs' own tables state them
    table_rows, controls = [], []
    for control in CONTROLS:
        source = next((run for run in names if any(r["row"] == control for r in held[run])), None)
        if source is not None:
            controls.append((control, source))
            table_rows += [{**r, "run": source} for r in held[source] if r["row"] == control]
    for run, label in runs:
        table_rows += [{**r, "row": f"{ROW} {label}", "run": run} for r in held[run] if r["row"] == ROW]
    loss_df = pd.DataFrame(table_rows)
    for key in ("estimate", "low", "high"):
        loss_df[key] = loss_df[key].astype(float)
    loss_df["seeds"] = loss_df["seeds"].astype(int)
    if "metric" not in loss_df:
        raise ValueError("heldout.csv without a metric column: rerun the runs' heldout_tables with the current code")
    columns = list(dict.fromkeys(loss_df["column"]))

    # the pairs, from the per-document losses of every seed of every run's cluster row
    replicates, losses = {}, {}
    for run, label in runs:
        path = results / run / "tables" / "heldout.csv"
        replicates[label] = []
        for i in range(_n_seeds(held[run], ROW, path)):
            model = replicate_name(ROW, i)
            key = f"{label}:{model}"
            replicates[label].append(key)
            losses[key] = {
                split: [str(results / run / "heldout" / model / split / f"{name}.loss.npy") for name in shard_names]
                for split, shard_names in shards.items()
            }
    prefixes = {split: [str(results / names[0] / "shards" / split / n) for n in ns] for split, ns in shards.items()}
    cols = load_columns(prefixes, losses, eos_id)
    pairs = [Pair(b, a, representation_factor(b, a)) for a, b in combinations(labels, 2)]
    recomputed, diff_df, _ = heldout_tables(cols, replicates, pairs, n_resamples, seed, level)
    for run, label in runs:
        stated = loss_df[loss_df["row"] == f"{ROW} {label}"].set_index(["metric", "column"])["estimate"]
        for _, r in recomputed[recomputed["row"] == label].iterrows():
            want = stated.get((r["metric"], r["column"]))
            if want is None or abs(want - r["estimate"]) > TOLERANCE:
                raise ValueError(
                    f"run {run}: its held-out loss files give {ROW} {r['estimate']:.5f} ({r['metric']}, {r['column']}), "
                    f"its tables/heldout.csv states {'nothing' if want is None else f'{want:.5f}'}: "
                    "the table is not from these files"
                )

    pct = round(100 * level)
    runs_text = ", ".join(f"`{run}` ({label})" for run, label in runs)
    control_text = "; ".join(f"`{c}` from run `{s}`" for c, s in controls)
    seeds = sorted({len(v) for v in replicates.values()})
    ct_sentence = _ct_sentence(results, names, shards)
    kept_head = [lab for lab in (*LABELS, "all") if any(lab in k for ks in kept.values() for k in ks.values())]
    kept_lines = ["| model | " + " | ".join(kept_head) + " |", "|" + "---|" * (len(kept_head) + 1)]
    kept_rows = [*((c, s, c) for c, s in controls), *((f"{ROW} {label}", run, ROW) for run, label in runs)]
    for shown, run, variant in kept_rows:
        k = kept[run].get(variant, {})
        cells = (f"{float(k[lab]):.1f}" if k.get(lab) else "—" for lab in kept_head)
        kept_lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    header = (
        "<!-- written by bench/representation_ablation.py from the runs' tables/heldout.csv, tables/labels.csv and "
        "held-out loss files; do not edit by hand -->"
    )
    parts = [
        header,
        (
            f"Held-out loss (nats; lower is better) of `{ROW}` under each representation (LAYER/POSITION), one run each: "
            f"{runs_text}; {control_text or 'no control rows'} (rows that do not depend on the representation). "
            f"Each cell is the run's own tables/heldout.csv: the mean over the row's seeds, [{pct}% interval] over "
            f"seeds and documents as that table states. The runs' held-out shards and tokenizers are byte-identical, so every "
            f"run scored the same documents. {ct_sentence}"
        ).rstrip(),
        "Mean token loss:\n\n" + losses_markdown(loss_df, columns, TOKEN).rstrip("\n"),
        "Type-balanced mean loss:\n\n" + losses_markdown(loss_df, columns, TYPE).rstrip("\n"),
        (
            "Kept fraction (%) of the training tokens of each ground-truth label (the runs' tables/labels.csv, the "
            "mean over seeds):\n\n" + "\n".join(kept_lines)
        ),
        (
            f"Paired differences between the representations, labelled by what differs: first minus second "
            f"(negative: the first predicts held-out text better), seed i against seed i ({'/'.join(map(str, seeds))} "
            f"seeds) on the same resampled documents; [{pct}% interval] and two-sided p from {n_resamples} bootstrap "
            "resamples of documents and seeds, * where p < 0.05 (not adjusted for the many cells)."
        ),
        "Mean token loss:\n\n" + pairs_markdown(diff_df, columns, TOKEN).rstrip("\n"),
        "Type-balanced mean loss:\n\n" + pairs_markdown(diff_df, columns, TYPE).rstrip("\n"),
        "What the pairs show (read off the two tables above; lower: the first representation of the pair has the "
        "lower held-out loss):\n\n" + pairs_prose(diff_df, columns).rstrip("\n"),
    ]
    if command:
        parts.append(f"Regenerate with `{command}`.")
    return "\n\n".join(parts) + "\n"


def write_page(page: Path, block: str) -> bool:
    """Rewrite ``page`` between its representation-ablation markers; return whether it changed."""
    from rhocluster.reporting.readme import replace_between_markers, write_if_changed

    text = page.read_bytes().decode("utf-8")
    return write_if_changed(page, replace_between_markers(text, block, str(page), START, END).encode("utf-8"))


def _eos_id(tokenizer: Path) -> int:
    """The EOS id of a run's tokenizer (documents end with it)."""
    from rhocluster.corpus.tokenizer import load_tokenizer

    return int(load_tokenizer(tokenizer).eos_token_id)


def main(argv: Sequence[str] | None = None) -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="RUN=LABEL, the counterpart first")
    ap.add_argument("--results", type=Path, default=REPO / "results")
    ap.add_argument("--resamples", type=int, default=config["report"]["bootstrap_resamples"])
    ap.add_argument("--seed", type=int, default=config["seed"])
    ap.add_argument("--page", type=Path, help="rewrite this page between its representation-ablation markers")
    ap.add_argument("--out", type=Path, help="write the Markdown to this file")
    args = ap.parse_args(argv)
    runs = []
    for a in args.runs:
        run, sep, label = a.partition("=")
        if not sep or not run or not label:
            ap.error(f"{a!r}: expected RUN=LABEL")
        runs.append((run, label))
    eos_id = _eos_id(args.results / runs[0][0] / "tokenizer")
    command = "PYTHONPATH=$PWD python bench/representation_ablation.py " + " ".join(args.runs)
    if args.results.resolve() != (REPO / "results").resolve():
        command += f" --results {args.results}"
    if args.page:
        page = args.page.resolve()
        command += f" --page {page.relative_to(REPO) if page.is_relative_to(REPO) else args.page}"
    md = ablation_markdown(args.results, runs, eos_id, args.resamples, args.seed, command=command)
    if args.page:
        print(f"{args.page}: {'rewritten' if write_page(args.page, md) else 'unchanged'}")
    if args.out:
        args.out.write_text(md)
    if not args.page and not args.out:
        print(md, end="")


if __name__ == "__main__":
    main()
