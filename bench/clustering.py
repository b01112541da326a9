"""Clustering and assignment benchmarks of the new method.

1. Hierarchical k-means (levels 1000/100/10 by default) on a seeded long-tailed Gaussian mixture
   (1M x 64 by default): ours (faiss Lloyd + greedy k-means++ seeding, rhocluster.clustering) against
   scikit-learn's KMeans and a plain-torch k-means, same k, same iterations, same procedure per level
   (level l clusters the centroids of level l-1). Reported: wall time per method and the ratio to
   scikit-learn, and the level-1 inertia on the points (recomputed the same way for every method).
   Also ours with Vo et al.'s resampling-clustering (--resampling-rounds fresh fits per level after
   the first): its inertia is higher by design (centroids leave the dense head for the tail).
2. Resampling on a long-tailed 2-D mixture (20 Zipf-weighted unit Gaussians, 40,000 points, k=40):
   centroids whose nearest component is the densest one, plain k-means against resampling, per seed.
3. The assign stage (rhocluster.clustering.assign.assign_shard) on a random model of the tiny config's
   shape (hidden 128, 4 layers, vocab 1024, windows of 129 tokens): tokens/s, and peak memory as the
   shard grows (each size in a fresh process: VmHWM minus the RSS right before the call).

    python bench/clustering.py --json bench/clustering.json               # the full default (minutes)
    python bench/clustering.py --n 200000 --levels 500 50 5 --json x.json  # smaller

Prints a Markdown table and writes every figure to the JSON path given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, help="where to write the results (JSON)")
    ap.add_argument("--n", type=int, default=1_000_000, help="points (default 1M)")
    ap.add_argument("--d", type=int, default=64, help="dimensions (default 64)")
    ap.add_argument("--levels", type=int, nargs="+", default=[1000, 100, 10], help="clusters per level, bottom-up")
    ap.add_argument("--components", type=int, default=None, help="mixture components (default 2 x level-1 k)")
    ap.add_argument("--n-iter", type=int, default=20, help="Lloyd iterations per level, every method")
    ap.add_argument("--max-points-per-centroid", type=int, default=256, help="ours: Lloyd on this many points per centroid")
    ap.add_argument("--threads", type=int, default=1, help="threads for every library (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resampling-rounds", type=int, default=9, help="ours_resampling: rounds per level (Vo et al.: 9)")
    ap.add_argument("--long-tail-seeds", type=int, default=8, help="seeds of the long-tailed 2-D mixture")
    ap.add_argument(
        "--skip", nargs="*", default=[], choices=["ours_all_points", "ours_resampling", "sklearn", "torch", "long_tail", "assign"]
    )
    ap.add_argument("--assign-windows", type=int, default=256, help="windows of the 1x shard")
    ap.add_argument("--assign-scales", type=int, nargs="+", default=[1, 4, 16], help="shard sizes, in multiples")
    ap.add_argument("--assign-batch", type=int, default=32, help="windows per forward pass")
    ap.add_argument("--assign-child", nargs=5, metavar=("MODEL", "SHARD", "PROJ", "CENTROIDS", "OUT"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def set_threads(n: int) -> None:
    """Before numpy/torch/faiss load: one thread count for OpenMP, BLAS and torch."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


# --- data ------------------------------------------------------------------------------------------


def gaussian_mixture(n: int, d: int, components: int, seed: int):
    """float32 [n, d]: components with Zipf-like weights (a long tail, as token embeddings have) and
    per-component spreads."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, components + 1) ** 1.1
    means = rng.normal(0.0, 4.0, (components, d)).astype(np.float32)
    spread = rng.uniform(0.5, 1.5, components).astype(np.float32)
    labels = rng.choice(components, size=n, p=weights / weights.sum())
    x = rng.standard_normal((n, d), dtype=np.float32)
    x *= spread[labels, None]
    x += means[labels]
    return x


# --- the three k-means ----------------------------------------------------------------------------


def hierarchy(fit_one, x, ks: list[int]):
    """Run ``fit_one(points, k) -> centroids`` level by level; returns (centroids per level, seconds per level)."""
    points, out, secs = x, [], []
    for k in ks:
        t = time.perf_counter()
        c = fit_one(points, k)
        secs.append(time.perf_counter() - t)
        out.append(c)
        points = c
    return out, secs


def ours(x, k: int, n_iter: int, seed: int, max_points: int | None, rounds: int = 0):
    from rhocluster.clustering.kmeans import kmeans

    return kmeans(
        x, k, n_iter=n_iter, seed=seed, init="kmeans++", max_points_per_centroid=max_points, resampling_rounds=rounds
    ).centroids


def sklearn_kmeans(x, k: int, n_iter: int, seed: int):
    from sklearn.cluster import KMeans

    km = KMeans(k, init="k-means++", n_init=1, max_iter=n_iter, tol=0.0, algorithm="lloyd", random_state=seed)
    return km.fit(x).cluster_centers_.astype("float32")


def torch_kmeans(x, k: int, n_iter: int, seed: int, chunk: int = 65536):
    """A plain torch k-means as one would write it by hand: greedy k-means++ over every point
    (2 + ln k candidates per step, like scikit-learn), then full-batch Lloyd iterations."""
    import math

    import torch

    g = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(x)
    n = xt.shape[0]
    xn = (xt * xt).sum(1)

    def sqdist(c):  # [m, n]
        return (xn[None, :] - 2.0 * (c @ xt.T) + (c * c).sum(1)[:, None]).clamp_min_(0.0)

    trials = 2 + int(math.log(k))
    idx = [int(torch.randint(n, (1,), generator=g))]
    closest = sqdist(xt[idx])[0]
    for _ in range(1, k):
        cum = torch.cumsum(closest.double(), 0)
        cand = torch.searchsorted(cum, torch.rand(trials, generator=g, dtype=torch.float64) * cum[-1]).clamp_max_(n - 1)
        dist = torch.minimum(sqdist(xt[cand]), closest[None, :])
        best = int(torch.argmin(dist.sum(1)))
        idx.append(int(cand[best]))
        closest = dist[best]
    c = xt[idx].clone()
    for _ in range(n_iter):
        sums = torch.zeros_like(c)
        counts = torch.zeros(k)
        for lo in range(0, n, chunk):
            xb = xt[lo : lo + chunk]
            a = torch.argmin((xb * xb).sum(1)[:, None] - 2.0 * (xb @ c.T) + (c * c).sum(1)[None, :], dim=1)
            sums.index_add_(0, a, xb)
            counts.index_add_(0, a, torch.ones(len(a)))
        keep = counts > 0  # an empty cluster keeps its centroid
        c[keep] = sums[keep] / counts[keep, None]
    return c.numpy()


def inertia(x, centroids) -> float:
    """Sum of squared distances of the points to their nearest centroid (exact faiss search, float64 sum)."""
    from rhocluster.clustering.kmeans import assign_nearest

    return float(assign_nearest(x, centroids)[1].astype("float64").sum())


def bench_kmeans(args: argparse.Namespace) -> dict:
    x = gaussian_mixture(args.n, args.d, args.components or 2 * args.levels[0], args.seed)
    methods = {
        "ours": lambda p, k: ours(p, k, args.n_iter, args.seed, args.max_points_per_centroid),
        "ours_all_points": lambda p, k: ours(p, k, args.n_iter, args.seed, None),
        "ours_resampling": lambda p, k: ours(p, k, args.n_iter, args.seed, args.max_points_per_centroid, args.resampling_rounds),
        "sklearn": lambda p, k: sklearn_kmeans(p, k, args.n_iter, args.seed),
        "torch": lambda p, k: torch_kmeans(p, k, args.n_iter, args.seed),
    }
    rows = {}
    for name, fit in methods.items():
        if name in args.skip:
            continue
        cents, secs = hierarchy(fit, x, args.levels)
        rows[name] = {"seconds": sum(secs), "seconds_per_level": secs, "inertia_level1": inertia(x, cents[0])}
        print(f"  {name}: {sum(secs):.1f} s, level-1 inertia {rows[name]['inertia_level1']:.6g}", file=sys.stderr)
    if "sklearn" in rows:
        ref = rows["sklearn"]
        for r in rows.values():
            r["speedup_vs_sklearn"] = ref["seconds"] / r["seconds"]
            r["inertia_vs_sklearn"] = r["inertia_level1"] / ref["inertia_level1"]
    return rows


# --- resampling on a long tail -------------------------------------------------------------------


def long_tailed_2d(seed: int, n: int = 40000, components: int = 20):
    """2-D mixture of unit Gaussians at uniform means in [-20, 20]^2, weights 1/rank (tests/test_kmeans.py)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, components + 1)
    means = rng.uniform(-20.0, 20.0, (components, 2))
    labels = rng.choice(components, size=n, p=w / w.sum())
    return (means[labels] + rng.normal(0.0, 1.0, (n, 2))).astype("float32"), means


def bench_long_tail(args: argparse.Namespace) -> dict:
    """Centroids (of k=40) nearest to the densest component, plain and with resampling, per seed."""
    from rhocluster.clustering.kmeans import kmeans

    rows = {"plain": [], "resampling": []}
    for seed in range(args.long_tail_seeds):
        x, means = long_tailed_2d(seed)
        for name, rounds in (("plain", 0), ("resampling", args.resampling_rounds)):
            c = kmeans(x, 40, n_iter=args.n_iter, seed=seed, resampling_rounds=rounds).centroids
            nearest = ((c[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
            rows[name].append(int((nearest == 0).sum()))
    print(f"  long tail: densest component holds {rows['plain']} centroids plain, {rows['resampling']} resampled", file=sys.stderr)
    return {"k": 40, "n": 40000, "components": 20, "resampling_rounds": args.resampling_rounds, "centroids_in_densest": rows}


# --- assign ----------------------------------------------------------------------------------------


def tiny_model(out_dir: Path) -> Path:
    """A random Llama of the tiny config's shape, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=1024, hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False,
    )
    LlamaForCausalLM(cfg).save_pretrained(out_dir)
    return out_dir


def vm(field: str) -> int:
    """A /proc/self/status memory field in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def assign_child(model: str, shard: str, proj: str, centroids: str, out: str, batch: int) -> dict:
    """One assign run in this (fresh) process: seconds, tokens/s and memory above the pre-call RSS."""
    import torch

    from rhocluster.clustering.assign import assign_shard
    from rhocluster.data.shards import Shard
    from rhocluster.scoring.forward import load_causal_lm

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    m = load_causal_lm(model)
    s = Shard(shard)
    before = vm("VmRSS")
    t = time.perf_counter()
    assign_shard(Path(model), Path(shard), Path(proj), Path(centroids), Path(out) / "leaf.npy", Path(out) / "dist.npy", batch_size=batch, model=m)
    secs = time.perf_counter() - t
    tokens = s.n_windows * (s.seq_len - 1)
    return {
        "windows": s.n_windows,
        "tokens": tokens,
        "seconds": secs,
        "tokens_per_s": tokens / secs,
        "rss_before_mb": before / 2**20,
        "peak_above_before_mb": (vm("VmHWM") - before) / 2**20,
        "whole_outputs_would_be_mb": 6 * s.n_windows * s.seq_len / 2**20,
    }


def bench_assign(args: argparse.Namespace) -> list[dict]:
    import numpy as np
    import torch

    from rhocluster.data.shards import write_shard
    from rhocluster.scoring.forward import forward_windows, load_causal_lm
    from rhocluster.scoring.projection import fit_projection

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_assign_") as tmp:
        root = Path(tmp)
        model = tiny_model(root / "model")
        rng = np.random.default_rng(args.seed)
        base = rng.integers(0, 1024, size=(args.assign_windows, 129))
        # projection and level-1 centroids fitted on the model's own final hidden states
        with torch.no_grad():
            _, h = forward_windows(load_causal_lm(model), torch.from_numpy(base[:32]), layer=-1, need_loss=False)
        h = h.reshape(-1, 128).numpy()  # [b, S - 1, d]: one row per target slot
        proj = fit_projection(h, "pca", 32, "l2", args.seed)
        proj.save(root / "projection.npz")
        x = proj.apply(h)
        np.save(root / "centroids.npy", x[rng.choice(len(x), 64, replace=False)])
        for scale in args.assign_scales:
            prefix = root / f"shard_{scale}x"
            write_shard(prefix, np.tile(base, (scale, 1)), None, 1024, 1, 0)
            out = root / f"out_{scale}x"
            out.mkdir()
            cmd = [sys.executable, __file__, "--json", "-", "--threads", str(args.threads), "--assign-batch", str(args.assign_batch),
                   "--assign-child", str(model), str(prefix), str(root / "projection.npz"), str(root / "centroids.npy"), str(out)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["scale"] = scale
            rows.append(row)
            print(f"  assign {scale}x: {row['tokens_per_s']:.0f} tokens/s, peak +{row['peak_above_before_mb']:.1f} MB", file=sys.stderr)
    return rows


# --- report ----------------------------------------------------------------------------------------


def markdown(result: dict) -> str:
    a = result["args"]
    lines = [
        f"### Hierarchical k-means: {a['n']:,} x {a['d']} points, levels {'/'.join(map(str, a['levels']))}, "
        f"{a['n_iter']} iterations, {a['threads']} thread(s)",
        "",
        "| method | seconds | speed-up vs sklearn | level-1 inertia | inertia vs sklearn |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in result["kmeans"].items():
        label = {
            "ours": f"ours (faiss, {a['max_points_per_centroid']} pts/centroid)",
            "ours_all_points": "ours (faiss, every point)",
            "ours_resampling": f"ours + {a['resampling_rounds']} resampling rounds per level",
            "sklearn": "scikit-learn KMeans",
            "torch": "plain torch",
        }[name]
        sp = f"{r['speedup_vs_sklearn']:.2f}x" if "speedup_vs_sklearn" in r else "-"
        ir = f"{r['inertia_vs_sklearn']:.4f}" if "inertia_vs_sklearn" in r else "-"
        lines.append(f"| {label} | {r['seconds']:.1f} | {sp} | {r['inertia_level1']:.6g} | {ir} |")
    if result.get("long_tail"):
        lt = result["long_tail"]
        lines += [
            "",
            f"### Long-tailed 2-D mixture ({lt['components']} Zipf-weighted components, {lt['n']:,} points, k={lt['k']}): "
            "centroids in the densest component, per seed",
            "",
            "| k-means | centroids | mean |",
            "|---|---|---:|",
        ]
        for name, counts in lt["centroids_in_densest"].items():
            label = "plain" if name == "plain" else f"{lt['resampling_rounds']} resampling rounds"
            lines.append(f"| {label} | {', '.join(map(str, counts))} | {sum(counts) / len(counts):.2f} |")
    if result.get("assign"):
        lines += [
            "",
            "### assign on the tiny model shape (hidden 128, 4 layers, vocab 1024, 129-token windows)",
            "",
            "| shard | windows | tokens | tokens/s | peak memory above start (MB) | whole [W, S] outputs (MB) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in result["assign"]:
            lines.append(
                f"| {r['scale']}x | {r['windows']} | {r['tokens']:,} | {r['tokens_per_s']:,.0f} | "
                f"{r['peak_above_before_mb']:.1f} | {r['whole_outputs_would_be_mb']:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    sys.path.insert(0, str(REPO))
    if args.assign_child:
        print(json.dumps(assign_child(*args.assign_child, args.assign_batch)))
        return
    import faiss
    import torch

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    result = {"args": vars(args), "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "faiss": faiss.__version__, "torch": torch.__version__}}
    t = time.perf_counter()
    result["kmeans"] = bench_kmeans(args)
    result["long_tail"] = {} if "long_tail" in args.skip else bench_long_tail(args)
    result["assign"] = [] if "assign" in args.skip else bench_assign(args)
    result["total_seconds"] = time.perf_counter() - t
    print(markdown(result))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
