"""Throughput of the evaluation stage on one CPU core: grading and tiny-model generation.

Grading: completions/s of :func:`rhocluster.evaluation.grading.grade_verdict` (extraction,
normalisation, equivalence with the sympy worker under its time limit) for each of the nine
benchmarks, on Rho-1-Math-1B's released completions (``shared/reference/rho1-outputs``):

* gsm8k and math: the released completions with the harness' golds (verdict agreement reported);
* svamp, asdiv, mawps: the GSM8K completions (same 8-shot GSM8K prompt, same answer style)
  against each benchmark's real golds (``shared/benchmarks``), cycled to the test-set size;
* tabmwp: the GSM8K completions and golds graded as tabmwp (its test file is not in shared/);
* mathqa, mmlu_stem, sat_math: the MATH completions (the Problem/Solution prompt family these
  share) against the real letter golds.

Generation: samples/s and tokens/s of a randomly initialised Llama of the tiny config's shape
(``config/config.yaml`` ``model``) through the same lm-eval ``hf`` path the workflow runs
(:func:`rhocluster.evaluation.evaluate.evaluate_model`), greedy, on a few tiny items.

The process (and the sympy worker it starts) is pinned to one core; torch and OpenMP use one
thread. Usage::

    OMP_NUM_THREADS=1 python bench/evaluation.py bench-evaluation.json [--repeats 3]

prints a Markdown table and writes every figure to the JSON path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NUMERIC = ("gsm8k", "svamp", "asdiv", "mawps", "tabmwp")
TARGET_PER_S = 1000.0  # grading target for the numeric benchmarks

# completions of which released set each benchmark is graded with, and where its golds come from
COMPLETIONS_FROM = {
    "gsm8k": "gsm8k", "svamp": "gsm8k", "asdiv": "gsm8k", "mawps": "gsm8k", "tabmwp": "gsm8k",
    "mathqa": "math", "mmlu_stem": "math", "sat_math": "math", "math": "math",
}


def pin_to_one_core(cpu: int | None) -> int | None:
    """Restrict this process (and children it starts later) to one CPU; return it (None if unsupported)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    core = allowed[0] if cpu is None else cpu
    os.sched_setaffinity(0, {core})
    return core


def _released(outputs: Path, name: str) -> list[dict[str, Any]]:
    with open(outputs / f"{name}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def grading_pairs(benchmark: str, outputs: Path, harness: Path) -> tuple[list[tuple[str, str]], list[bool] | None, str]:
    """(completion, gold) pairs to grade, the harness' verdicts when known, and a source note."""
    from rhocluster.evaluation.benchmarks import load_harness_items

    released = _released(outputs, COMPLETIONS_FROM[benchmark])
    if benchmark in ("gsm8k", "math"):
        pairs = [(row["code"][0], row["gt"]) for row in released]
        return pairs, [bool(row["score"][0]) for row in released], f"released {benchmark} completions"
    if benchmark == "tabmwp":
        return [(row["code"][0], row["gt"]) for row in released], None, "released gsm8k completions and golds"
    golds = [item["gold"] for item in load_harness_items(harness, benchmark)]
    pairs = [(released[i % len(released)]["code"][0], gold) for i, gold in enumerate(golds)]
    return pairs, None, f"released {COMPLETIONS_FROM[benchmark]} completions vs real {benchmark} golds"


def bench_grading(outputs: Path, harness: Path, repeats: int) -> list[dict[str, Any]]:
    """Grade every benchmark's pairs ``repeats`` times; completions/s of the fastest pass."""
    from rhocluster.evaluation.benchmarks import BENCHMARKS
    from rhocluster.evaluation.grading import grade_verdict, timeout_count

    start = time.perf_counter()
    grade_verdict("math", "$\\boxed{x^2}$", "x^{2}+0")  # starts the sympy worker, outside the timings
    worker_start_s = time.perf_counter() - start
    rows = []
    for benchmark in BENCHMARKS:
        pairs, harness_verdicts, source = grading_pairs(benchmark, outputs, harness)
        seconds: list[float] = []
        verdicts: list[bool] = []
        timeouts_before = timeout_count()
        for _ in range(repeats):
            t0 = time.perf_counter()
            verdicts = [grade_verdict(benchmark, completion, gold).correct for completion, gold in pairs]
            seconds.append(time.perf_counter() - t0)
        row: dict[str, Any] = {
            "benchmark": benchmark,
            "source": source,
            "n": len(pairs),
            "best_s": min(seconds),
            "median_s": statistics.median(seconds),
            "per_s": len(pairs) / min(seconds),
            "first_pass_per_s": len(pairs) / seconds[0],
            "accuracy": 100.0 * sum(verdicts) / len(pairs),
            "timeouts": (timeout_count() - timeouts_before) // repeats,
            "numeric": benchmark in NUMERIC,
            "target_per_s": TARGET_PER_S if benchmark in NUMERIC else None,
        }
        if harness_verdicts is not None:
            row["agreement"] = sum(a == b for a, b in zip(verdicts, harness_verdicts)) / len(pairs)
        rows.append(row)
    for row in rows:
        row["worker_start_s"] = worker_start_s
    return rows


def _tiny_model(workdir: Path, seed: int) -> tuple[Path, Path, dict[str, Any]]:
    """A random-weight Llama of the tiny config's shape with a BPE trained on tiny prompts."""
    import torch
    import yaml
    from transformers import LlamaConfig, LlamaForCausalLM

    from rhocluster.corpus.tokenizer import load_tokenizer, train_tokenizer
    from rhocluster.evaluation.benchmarks import BENCHMARKS, normalize_benchmark
    from rhocluster.evaluation.tiny import write_tiny_benchmarks
    from rhocluster.model.shape import LlamaShape

    shape = LlamaShape.from_dict(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["model"])
    harness, normalized = workdir / "harness", workdir / "normalized"
    write_tiny_benchmarks(harness, 100, seed=seed)
    texts = []
    for benchmark in BENCHMARKS:
        normalize_benchmark(harness, benchmark, normalized / f"{benchmark}.jsonl")
        texts += [json.loads(line)["prompt"] for line in (normalized / f"{benchmark}.jsonl").read_text().splitlines()]
    model_dir = workdir / "model"
    train_tokenizer(texts, shape.vocab_size, model_dir)
    tokenizer = load_tokenizer(model_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(**shape.to_hf_config(), bos_token_id=1, eos_token_id=2, pad_token_id=3)
    model = LlamaForCausalLM(config)
    model.save_pretrained(model_dir)
    info = {**shape.to_dict(), "parameters": sum(p.numel() for p in model.parameters()), "tokenizer_size": len(tokenizer)}
    return model_dir, normalized, info


def bench_generation(
    benchmarks: list[str], n_items: int, batch_size: int, max_gen_toks: int, seed: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run evaluate_model (lm-eval hf, CPU, greedy) on ``n_items`` tiny items per benchmark."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from rhocluster.corpus.tokenizer import load_tokenizer
    from rhocluster.evaluation.evaluate import evaluate_model

    torch.set_num_threads(1)
    generate, model_generate = HFLM.generate_until, HFLM._model_generate
    timer = {"s": 0.0, "decoded": 0}

    def timed_generate(self: HFLM, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        t0 = time.perf_counter()
        try:
            return generate(self, requests, disable_tqdm=True)
        finally:
            timer["s"] += time.perf_counter() - t0

    def counted_model_generate(self: HFLM, context: Any, *args: Any, **kwargs: Any) -> Any:
        out = model_generate(self, context, *args, **kwargs)
        # every row of a batch is decoded until the whole batch stops
        timer["decoded"] += (out.shape[1] - context.shape[1]) * out.shape[0]
        return out

    # measure decoding apart from model loading and grading; count the tokens actually decoded
    HFLM.generate_until, HFLM._model_generate = timed_generate, counted_model_generate
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
            model_dir, normalized, info = _tiny_model(Path(tmp), seed)
            tokenizer = load_tokenizer(model_dir)
            for benchmark in benchmarks:
                timer["s"], timer["decoded"] = 0.0, 0
                out = Path(tmp) / "out"
                t0 = time.perf_counter()
                summary = evaluate_model(
                    model_dir, benchmark, normalized / f"{benchmark}.jsonl", out / f"{benchmark}.json",
                    out / f"{benchmark}.predictions.jsonl", batch_size=batch_size, max_gen_toks=max_gen_toks,
                    device="cpu", limit=n_items,
                )
                total_s = time.perf_counter() - t0
                completions = [json.loads(line)["completion"] for line in (out / f"{benchmark}.predictions.jsonl").open()]
                tokens = sum(len(ids) for ids in tokenizer(completions, add_special_tokens=False)["input_ids"])
                prompt_tokens = sum(
                    len(ids) for ids in tokenizer(
                        [json.loads(line)["prompt"] for line in (normalized / f"{benchmark}.jsonl").open()][:n_items]
                    )["input_ids"]
                )
                rows.append({
                    "benchmark": benchmark,
                    "n": summary["n"],
                    "batch_size": batch_size,
                    "max_gen_toks": max_gen_toks,
                    "prompt_tokens_mean": prompt_tokens / summary["n"],
                    "decoded_tokens": timer["decoded"],
                    "completion_tokens": tokens,  # after cutting at stop strings
                    "generate_s": timer["s"],
                    "end_to_end_s": total_s,
                    "samples_per_s": summary["n"] / timer["s"],
                    "tokens_per_s": timer["decoded"] / timer["s"],
                    "end_to_end_samples_per_s": summary["n"] / total_s,
                })
    finally:
        HFLM.generate_until, HFLM._model_generate = generate, model_generate
    return rows, info


def markdown(grading: list[dict[str, Any]], generation: list[dict[str, Any]], model: dict[str, Any] | None) -> str:
    """The figures as Markdown tables."""
    lines = [
        "| benchmark | completions | n | completions/s (first pass) | completions/s (best) | target | accuracy % | agreement with harness |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in grading:
        met = min(r["per_s"], r["first_pass_per_s"]) >= (r["target_per_s"] or 0)
        target = f"≥ {r['target_per_s']:.0f} {'met' if met else 'MISSED'}" if r["numeric"] else "–"
        agreement = f"{100 * r['agreement']:.2f}%" if "agreement" in r else "–"
        lines.append(
            f"| {r['benchmark']} | {r['source']} | {r['n']} | {r['first_pass_per_s']:,.0f} | {r['per_s']:,.0f} | {target} "
            f"| {r['accuracy']:.2f} | {agreement} |"
        )
    if generation and model:
        lines += [
            "",
            f"Tiny random Llama (hidden {model['hidden_size']}, ffn {model['ffn_hidden_size']}, {model['num_layers']} layers, "
            f"{model['num_attention_heads']} heads, {model['num_query_groups']} kv heads, vocab {model['vocab_size']}; "
            f"{model['parameters']:,} parameters), lm-eval hf on CPU, greedy:",
            "",
            "| benchmark | items | batch | max new tokens | mean prompt tokens | decoded tokens | samples/s | tokens/s | end-to-end samples/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in generation:
            lines.append(
                f"| {r['benchmark']} | {r['n']} | {r['batch_size']} | {r['max_gen_toks']} | {r['prompt_tokens_mean']:.0f} | "
                f"{r['decoded_tokens']} | "
                f"{r['samples_per_s']:.2f} | {r['tokens_per_s']:.1f} | {r['end_to_end_samples_per_s']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_json", type=Path, help="where to write the figures (JSON)")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared/ folder (benchmarks, reference)")
    parser.add_argument("--repeats", type=int, default=3, help="grading passes per benchmark (the fastest counts)")
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the first allowed)")
    parser.add_argument("--gen-benchmarks", default="gsm8k,math", help="comma-separated; empty to skip generation")
    parser.add_argument("--gen-items", type=int, default=12)
    parser.add_argument("--gen-batch-size", type=int, default=12)
    parser.add_argument("--max-gen-toks", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from rhocluster.common.atomic import save_json

    outputs = args.shared / "reference" / "rho1-outputs" / "rho-math-1b-v0.1"
    harness = args.shared / "benchmarks" / "math-evaluation-harness-7fd4949"
    for path in (outputs, harness):
        if not path.is_dir():
            parser.error(f"{path} not found (pass --shared)")
    core = pin_to_one_core(args.cpu)
    grading = bench_grading(outputs, harness, args.repeats)
    gen_benchmarks = [b for b in args.gen_benchmarks.split(",") if b]
    generation, model = bench_generation(gen_benchmarks, args.gen_items, args.gen_batch_size, args.max_gen_toks, args.seed) if gen_benchmarks else ([], None)

    import lm_eval
    import torch

    report = {
        "machine": {
            "cpu": _cpu_name(), "pinned_core": core, "python": platform.python_version(),
            "torch": torch.__version__, "lm_eval": lm_eval.__version__, "torch_threads": torch.get_num_threads(),
        },
        "grading": grading,
        "generation": generation,
        "tiny_model": model,
    }
    save_json(args.out_json, report)
    print(markdown(grading, generation, model))
    print(f"\nsympy worker start: {grading[0]['worker_start_s']:.2f} s (not in the rates); figures in {args.out_json}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
