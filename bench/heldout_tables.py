"""Time of the held-out tables (rhocluster.reporting.heldout_tables.write_heldout_tables) on synthetic inputs of
the tiny run's size: a labelled web split of 100 documents (~71k target tokens) and a problem/solution
split of 100 documents (~37k), vocabulary 1024, 23 models (base, reference, 7 variants x 3 seeds), the
run's pairs, 10,000 resamples. Token ids are Zipf-distributed per label and each model's loss is a
per-type difficulty plus a model shift plus noise, so both metrics see realistic type counts.

    python bench/heldout_tables.py [--json bench/heldout_tables.json] [--resamples 10000] [--repeats 3]

Prints the seconds of each repeat (loading the shards and loss files included) and their median. BLAS
runs on one thread, as Snakemake runs the rule (``threads: 1`` sets OMP_NUM_THREADS and its kin).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from rhocluster.data.shards import pack_windows, write_shard  # noqa: E402
from rhocluster.workflow.variants import Pair  # noqa: E402

EOS, BOS, SEQ, VOCAB = 2, 1, 129, 1024
VARIANTS = ("ct", "rho1", "random", "excess_static", "cluster", "cluster_excess", "cluster_slm")
PAIRS = (
    Pair("random", "ct", "a random budget instead of every token"),
    Pair("excess_static", "random", "ranking by excess loss"),
    Pair("rho1", "excess_static", "live instead of static ranking"),
    Pair("cluster", "random", "balanced tree sampling instead of uniform"),
    Pair("cluster_excess", "excess_static", "balancing by the tree"),
    Pair("cluster_excess", "cluster", "leaves filled by excess loss instead of at random"),
    Pair("cluster_slm", "rho1", "balancing by the tree"),
)
# label mix of the tiny run's held-out web tokens (math, prose, navigation, footer, junk)
LABEL_P = np.array([0.665, 0.072, 0.093, 0.12, 0.05])


def synthetic_docs(n_docs: int, mean_len: int, labelled: bool, rng: np.random.Generator) -> list:
    """Documents of Zipf-distributed token ids (each label its own slice of the vocabulary)."""
    docs = []
    for _ in range(n_docs):
        n = max(8, int(rng.normal(mean_len, mean_len / 3)))
        lab = rng.choice(len(LABEL_P), size=n, p=LABEL_P).astype(np.uint8) if labelled else np.zeros(n, np.uint8)
        lab = np.sort(lab)  # label spans, not single tokens
        tok = 3 + (lab.astype(np.int64) * 200 + rng.zipf(1.3, n) % 200) % (VOCAB - 3)
        docs.append((tok.tolist(), lab if labelled else None))
    return docs


def make_inputs(root: Path, rng: np.random.Generator) -> tuple[dict, dict, dict]:
    """(shards, losses, replicates) in write_heldout_tables' form, files under ``root``."""
    models = ["base", "reference", *(f"{v}{'' if s == 0 else f'.s{s}'}" for s in range(3) for v in VARIANTS)]
    replicates = {"base": ["base"], "reference": ["reference"]}
    replicates.update({v: [m for m in models if m.split(".")[0] == v] for v in VARIANTS})
    difficulty = rng.gamma(2.0, 1.5, VOCAB)
    shards, losses = {}, {m: {} for m in models}
    for split, n_docs, mean_len, labelled in (("heldout_web", 100, 712, True), ("heldout_hq", 100, 368, False)):
        tokens, labels, _, dropped = pack_windows(synthetic_docs(n_docs, mean_len, labelled, rng), SEQ, EOS, BOS)
        write_shard(root / split, tokens, labels, VOCAB, n_documents=n_docs, n_dropped=dropped)
        shards[split] = [str(root / split)]
        for i, m in enumerate(models):
            loss = difficulty[tokens] * (0.5 + 0.02 * i) + rng.normal(0, 0.5, tokens.shape)
            loss = np.abs(loss).astype(np.float16)
            loss[:, 0] = np.nan
            path = root / f"{m}.{split}.npy"
            np.save(path, loss)
            losses[m][split] = [str(path)]
    return shards, losses, replicates


def main() -> None:
    from rhocluster.reporting.heldout_tables import write_heldout_tables

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards, losses, replicates = make_inputs(root, np.random.default_rng(0))
        out = {k: root / f"out.{k}" for k in ("md", "losses_csv", "differences_csv")}
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            write_heldout_tables(shards, losses, replicates, PAIRS, EOS, args.resamples, 1234, "bench", out)
            times.append(time.perf_counter() - start)
        tokens = {s: int(np.load(losses["base"][s][0]).shape[0] * (SEQ - 1)) for s in shards}
    result = {
        "seconds": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3),
        "resamples": args.resamples,
        "models": len(losses),
        "target_tokens": tokens,
        "machine": platform.machine(),
        "numpy": np.__version__,
        "blas_threads": os.environ["OPENBLAS_NUM_THREADS"],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
