"""Evaluate one model on one benchmark through lm-eval, the Rho-1 harness way.

The benchmark's normalised jsonl (``normalize_benchmark``) is fed to our ``rho1_<benchmark>``
lm-eval task, decoded greedily up to the harness' stop strings, and graded by
:mod:`rhocluster.evaluation.grading`. Per-item predictions and a summary are written
atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from rhocluster.data.atomic import atomic_path, save_json
from rhocluster.evaluation.answers import extract_answer
from rhocluster.evaluation.benchmarks import PROMPT_FILE, STOP_STRINGS, check_benchmark
from rhocluster.evaluation.lm_eval_tasks import TASKS_DIR, task_name
from rhocluster.evaluation.lm_eval_tasks.utils import read_normalized

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")
HARNESS_COMMIT = "7fd4949"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_args(backend: str, model_dir: Path, device: str) -> dict[str, Any]:
    if backend == "hf":
        # float32 on CPU (half precision is slow and lossy there); the checkpoint's dtype on GPU
        # (the device goes in through simple_evaluate, which adds it to these arguments)
        return {"pretrained": str(model_dir), "dtype": "float32" if device == "cpu" else "auto"}
    # vLLM as in the harness: the checkpoint's dtype, fixed seed (decoding is greedy anyway)
    return {"pretrained": str(model_dir), "dtype": "auto", "seed": 0, "gpu_memory_utilization": 0.85}


def count_truncated_prompts(model_dir: Path, prompts: list[str], max_gen_toks: int) -> tuple[int, int]:
    """(context budget, prompts over it): lm-eval keeps only the last ``positions - max_gen_toks``
    prompt tokens, where the harness (vLLM) kept the whole prompt and shortened the generation."""
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    positions = getattr(config, "max_position_embeddings", None) or 2048  # lm-eval's fallback too
    budget = positions - max_gen_toks
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    return budget, sum(length > budget for length in lengths)


def evaluate_model(
    model_dir: Path,
    benchmark: str,
    normalized_jsonl: Path,
    out_json: Path,
    out_predictions: Path,
    *,
    backend: str = "hf",
    batch_size: int = 8,
    max_gen_toks: int = 1024,
    device: str = "cpu",
    limit: int | None = None,
) -> dict[str, Any]:
    """Run lm-eval on ``normalized_jsonl`` and write predictions and a summary.

    ``out_predictions`` gets one jsonl row per item: ``id``, ``prompt_sha256`` (of the
    prompt lm-eval actually sent), ``completion``, ``extracted_answer``, ``gold``,
    ``verdict`` and ``timed_out``. ``out_json`` gets the returned summary: ``benchmark``,
    ``model``, ``accuracy`` (percent), ``n``, ``correct``, ``timeouts``,
    ``empty_predictions``, ``truncated_prompts`` (prompts longer than the model's positions
    minus ``max_gen_toks``, which lm-eval left-truncates) and ``settings``.
    """
    from lm_eval import __version__ as lm_eval_version
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    check_benchmark(benchmark)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    model_dir, normalized_jsonl = Path(model_dir), Path(normalized_jsonl)
    rows = read_normalized(normalized_jsonl)
    if not rows:
        raise ValueError(f"{normalized_jsonl}: no items")
    by_id = {str(row["id"]): row for row in rows}
    if len(by_id) != len(rows):
        raise ValueError(f"{normalized_jsonl}: duplicate ids")

    task = task_name(benchmark)
    # the task's rows come from this file (metadata reaches the task's custom_dataset hook)
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_files": str(normalized_jsonl)})
    results = simple_evaluate(
        model=backend,
        model_args=_model_args(backend, model_dir, device),
        tasks=[task],
        batch_size="auto" if backend == "vllm" else batch_size,
        device=device if backend == "hf" else None,
        limit=limit,
        log_samples=True,
        bootstrap_iters=0,
        gen_kwargs={"max_gen_toks": max_gen_toks, "do_sample": False, "temperature": 0.0},
        task_manager=manager,
    )
    if results is None:  # a non-zero rank of a distributed run
        raise RuntimeError("lm-eval returned no results (not rank 0?)")

    predictions = []
    for sample in sorted(results["samples"][task], key=lambda s: s["doc_id"]):
        row = by_id[sample["doc"]["id"]]
        sent_prompt = sample["arguments"][0][0]
        if sent_prompt != row["prompt"]:
            # the contract is the harness' prompt, byte for byte
            raise RuntimeError(f"{benchmark} item {row['id']}: lm-eval sent a prompt that differs from the normalized one")
        completion = sample["filtered_resps"][0]
        if isinstance(completion, list):
            completion = completion[0]
        predictions.append(
            {
                "id": row["id"],
                "prompt_sha256": _sha256(sent_prompt),
                "completion": completion,
                "extracted_answer": extract_answer(benchmark, completion),
                "gold": row["gold"],
                "verdict": bool(sample["exact_match"]),
                "timed_out": bool(sample["timeout"]),
            }
        )

    n = len(predictions)
    correct = sum(p["verdict"] for p in predictions)
    prompts = [by_id[str(p["id"])]["prompt"] for p in predictions]
    budget, truncated = count_truncated_prompts(model_dir, prompts, max_gen_toks)
    if truncated:
        log.warning("%s: %d of %d prompts exceed %d tokens and were left-truncated", benchmark, truncated, n, budget)
    summary = {
        "benchmark": benchmark,
        "model": str(model_dir),
        "accuracy": 100.0 * correct / n,
        "n": n,
        "correct": correct,
        "timeouts": sum(p["timed_out"] for p in predictions),
        "empty_predictions": sum(p["extracted_answer"] == "" for p in predictions),
        "truncated_prompts": truncated,
        "settings": {
            "backend": backend,
            "device": device,
            "dtype": _model_args(backend, model_dir, device)["dtype"],
            "batch_size": batch_size,
            "max_gen_toks": max_gen_toks,
            "context_tokens": budget,
            "limit": limit,
            "do_sample": False,
            "temperature": 0.0,
            "stop_strings": list(STOP_STRINGS),
            "prompt_file": f"prompts/cot/{PROMPT_FILE[benchmark]}.md",
            "harness_commit": HARNESS_COMMIT,
            "lm_eval_task": task,
            "lm_eval_version": lm_eval_version,
            "normalized_jsonl": str(normalized_jsonl),
            "normalized_sha256": _file_sha256(normalized_jsonl),
        },
    }
    with atomic_path(out_predictions, ".jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for prediction in predictions:
                fh.write(json.dumps(prediction, ensure_ascii=False) + "\n")
    save_json(out_json, summary)
    log.info("%s on %s: %.1f%% (%d/%d)", model_dir, benchmark, summary["accuracy"], correct, n)
    return summary


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m rhocluster.evaluation.run MODEL_DIR BENCHMARK NORMALIZED OUT_JSON OUT_PRED``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("benchmark")
    parser.add_argument("normalized_jsonl", type=Path)
    parser.add_argument("out_json", type=Path)
    parser.add_argument("out_predictions", type=Path)
    parser.add_argument("--backend", default="hf", choices=BACKENDS)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-gen-toks", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    summary = evaluate_model(
        args.model_dir, args.benchmark, args.normalized_jsonl, args.out_json, args.out_predictions,
        backend=args.backend, batch_size=args.batch_size, max_gen_toks=args.max_gen_toks,
        device=args.device, limit=args.limit,
    )
    print(json.dumps({k: summary[k] for k in ("benchmark", "accuracy", "n", "correct")}))


if __name__ == "__main__":
    main()
