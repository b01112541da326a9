"""Evaluate one model on one benchmark through lm-eval, the Rho-1 harness way.

The benchmark's normalised jsonl (``normalize_benchmark``) is fed to our ``rho1_<benchmark>``
lm-eval task, decoded greedily up to the harness' stop strings, and graded by
:mod:`rhocluster.evaluation.grading`. Per-item predictions and a summary are written
atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rhocluster.data.atomic import atomic_path, save_json
from rhocluster.evaluation.answers import extract_answer, is_empty_answer
from rhocluster.evaluation.benchmarks import PROMPT_FILE, STOP_STRINGS, check_benchmark
from rhocluster.evaluation.grading import configured_timeout_s
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


@dataclass(frozen=True)
class VLLMSettings:
    """Engine settings of the vllm backend (config ``evaluation.vllm``)."""

    tensor_parallel_size: int = 1
    dtype: str = "auto"  # the checkpoint's dtype, as the harness runs vLLM
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None  # None: the model's max_position_embeddings

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> "VLLMSettings":
        """Settings from a config mapping; unknown keys are an error naming them."""
        section = dict(section or {})
        unknown = sorted(set(section) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown vllm setting(s): {', '.join(unknown)}")
        return cls(**section)


def hf_model_args(model_dir: Path, device: str) -> dict[str, Any]:
    """lm-eval ``hf`` model_args: float32 on CPU (half precision is slow and lossy there), the
    checkpoint's dtype on GPU. The device goes in through simple_evaluate."""
    return {"pretrained": str(model_dir), "dtype": "float32" if device == "cpu" else "auto"}


def vllm_model_args(model_dir: Path, settings: VLLMSettings, seed: int) -> dict[str, Any]:
    """lm-eval ``vllm`` model_args: engine settings plus a fixed seed (decoding is greedy anyway)."""
    if settings.tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size must be >= 1, got {settings.tensor_parallel_size}")
    if not 0 < settings.gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {settings.gpu_memory_utilization}")
    args: dict[str, Any] = {
        "pretrained": str(model_dir),
        "dtype": settings.dtype,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "seed": int(seed),
    }
    if settings.max_model_len is not None:
        args["max_model_len"] = int(settings.max_model_len)
    return args


def check_backend(backend: str, device: str, settings: VLLMSettings | None = None) -> None:
    """Fail early, with what to do, when ``backend`` cannot run here.

    vllm needs the ``vllm`` package and at least ``tensor_parallel_size`` CUDA GPUs; hf on a
    ``cuda`` device needs CUDA.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    import torch

    if backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise RuntimeError(
                "evaluation.backend is 'vllm' but the vllm package is not installed: "
                "pip install 'lm-eval[vllm]' on a CUDA machine, or set evaluation.backend: hf"
            )
        if not torch.cuda.is_available():
            raise RuntimeError(
                "evaluation.backend is 'vllm' but no CUDA GPU is visible (check CUDA_VISIBLE_DEVICES "
                "and the SLURM gpus resource, resources.gpu_rules: true); on CPU use evaluation.backend: hf"
            )
        wanted = (settings or VLLMSettings()).tensor_parallel_size
        if torch.cuda.device_count() < wanted:
            raise RuntimeError(
                f"evaluation.vllm.tensor_parallel_size is {wanted} but only {torch.cuda.device_count()} GPU(s) are visible"
            )
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"evaluation.device is {device!r} but CUDA is not available; use device: cpu")


def model_args(
    backend: str, model_dir: Path, device: str, settings: VLLMSettings | None = None, seed: int = 0
) -> dict[str, Any]:
    """lm-eval model_args of ``backend`` (see :func:`hf_model_args`, :func:`vllm_model_args`)."""
    if backend == "hf":
        return hf_model_args(model_dir, device)
    if backend == "vllm":
        return vllm_model_args(model_dir, settings or VLLMSettings(), seed)
    raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")


def _positions(model_dir: Path) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    return getattr(config, "max_position_embeddings", None) or 2048  # lm-eval's fallback too


def generation_budget(
    model_dir: Path, prompts: list[str], max_gen_toks: int, max_length: int | None = None
) -> tuple[int, int, int]:
    """(new-token limit, context budget, prompts over it) for one benchmark's ``prompts``.

    The harness' vLLM kept every prompt whole and let a completion run until ``max_gen_toks`` or the
    end of the context (``max_length``: the model's positions unless given). lm-eval instead keeps
    the last ``max_length - max_gen_toks`` prompt tokens, which would cut the first few-shot example
    of long prompts (MathQA's run to ~1,500 TinyLlama tokens). So the limit is lowered to what the
    longest prompt leaves, ``min(max_gen_toks, max_length - longest)`` (at least 1): no prompt is cut,
    and a completion is only shortened where the context would have ended it for the longest prompt.
    Only a prompt that fills the context by itself is still left-truncated, and counted.
    """
    from transformers import AutoTokenizer

    positions = max_length or _positions(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]  # with BOS: never an undercount
    new_tokens = max(1, min(max_gen_toks, positions - max(lengths, default=0)))
    budget = positions - new_tokens
    return new_tokens, budget, sum(length > budget for length in lengths)


def evaluate_model(
    model_dir: Path,
    benchmark: str,
    normalized_jsonl: Path,
    out_json: Path,
    out_predictions: Path,
    *,
    backend: str = "hf",
    batch_size: int | str = 8,
    max_gen_toks: int = 1024,
    device: str = "cpu",
    limit: int | None = None,
    vllm: VLLMSettings | dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run lm-eval on ``normalized_jsonl`` and write predictions and a summary.

    ``backend`` is ``hf`` (``device`` cpu or cuda) or ``vllm`` (engine ``vllm`` settings,
    ``seed``); ``batch_size`` an integer or ``"auto"``. ``out_predictions`` gets one jsonl row
    per item: ``id``, ``prompt_sha256`` (of the prompt lm-eval actually sent), ``completion``,
    ``extracted_answer``, ``gold``, ``verdict`` and ``timed_out``. ``out_json`` gets the
    returned summary: ``benchmark``, ``model``, ``accuracy`` (percent), ``n``, ``correct``,
    ``timeouts`` (comparisons that hit the grading time limit, counted wrong),
    ``empty_predictions``, ``truncated_prompts`` (prompts that fill the context alone, which lm-eval
    left-truncates; see :func:`generation_budget` for the new-token limit) and ``settings``.
    """
    from lm_eval import __version__ as lm_eval_version
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    check_benchmark(benchmark)
    settings = vllm if isinstance(vllm, VLLMSettings) else VLLMSettings.from_config(vllm)
    if not (batch_size == "auto" or (isinstance(batch_size, int) and batch_size >= 1)):
        raise ValueError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")
    check_backend(backend, device, settings)
    if backend == "vllm" and batch_size != "auto":
        log.warning("vllm with batch_size %s: lm-eval hands vLLM %s prompts at a time; 'auto' lets vLLM schedule them all",
                    batch_size, batch_size)
    model_dir, normalized_jsonl = Path(model_dir), Path(normalized_jsonl)
    rows = read_normalized(normalized_jsonl)
    if not rows:
        raise ValueError(f"{normalized_jsonl}: no items")
    by_id = {str(row["id"]): row for row in rows}
    if len(by_id) != len(rows):
        raise ValueError(f"{normalized_jsonl}: duplicate ids")

    task = task_name(benchmark)
    args = model_args(backend, model_dir, device, settings, seed)
    sent = rows if limit is None else rows[: int(limit) if limit >= 1 else math.ceil(limit * len(rows))]
    max_length = settings.max_model_len if backend == "vllm" else None
    new_tokens, budget, truncated = generation_budget(model_dir, [r["prompt"] for r in sent], max_gen_toks, max_length)
    if new_tokens < max_gen_toks:
        log.info("%s: at most %d new tokens (not %d), so the longest prompt fits the %d-token context whole",
                 benchmark, new_tokens, max_gen_toks, budget + new_tokens)
    if truncated:
        log.warning("%s: %d prompts fill the context alone and are left-truncated to %d tokens", benchmark, truncated, budget)
    # the task's rows come from this file (metadata reaches the task's custom_dataset hook)
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_files": str(normalized_jsonl)})
    results = simple_evaluate(
        model=backend,
        model_args=args,
        tasks=[task],
        batch_size=batch_size,
        device=device if backend == "hf" else None,
        limit=limit,
        log_samples=True,
        bootstrap_iters=0,
        gen_kwargs={"max_gen_toks": new_tokens, "do_sample": False, "temperature": 0.0},
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
    if n != len(sent):
        raise RuntimeError(f"{benchmark}: lm-eval returned {n} samples for {len(sent)} prompts")
    timed_out = [str(p["id"]) for p in predictions if p["timed_out"]]
    if timed_out:
        log.warning("%s: %d answer(s) hit the grading time limit and count as wrong: ids %s",
                    benchmark, len(timed_out), ", ".join(timed_out))
    summary = {
        "benchmark": benchmark,
        "model": str(model_dir),
        "accuracy": 100.0 * correct / n,
        "n": n,
        "correct": correct,
        "timeouts": sum(p["timed_out"] for p in predictions),
        "empty_predictions": sum(is_empty_answer(p["extracted_answer"]) for p in predictions),
        "truncated_prompts": truncated,
        "settings": {
            "backend": backend,
            "device": device if backend == "hf" else "cuda",
            "dtype": args["dtype"],
            "model_args": {k: v for k, v in args.items() if k != "pretrained"},
            "batch_size": batch_size,
            "max_gen_toks": max_gen_toks,
            "max_new_tokens": new_tokens,
            "context_tokens": budget,
            "limit": limit,
            "do_sample": False,
            "temperature": 0.0,
            "stop_strings": list(STOP_STRINGS),
            "grade_timeout_s": configured_timeout_s(),
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


def _batch_size(text: str) -> int | str:
    return text if text == "auto" else int(text)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m rhocluster.evaluation.run MODEL_DIR BENCHMARK NORMALIZED OUT_JSON OUT_PRED``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("benchmark")
    parser.add_argument("normalized_jsonl", type=Path)
    parser.add_argument("out_json", type=Path)
    parser.add_argument("out_predictions", type=Path)
    parser.add_argument("--backend", default="hf", choices=BACKENDS)
    parser.add_argument("--batch-size", type=_batch_size, default=8, help="an integer or 'auto'")
    parser.add_argument("--max-gen-toks", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm only")
    parser.add_argument("--vllm-dtype", default="auto", help="vllm only")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85, help="vllm only")
    parser.add_argument("--max-model-len", type=int, default=None, help="vllm only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    vllm = VLLMSettings(args.tensor_parallel_size, args.vllm_dtype, args.gpu_memory_utilization, args.max_model_len)
    summary = evaluate_model(
        args.model_dir, args.benchmark, args.normalized_jsonl, args.out_json, args.out_predictions,
        backend=args.backend, batch_size=args.batch_size, max_gen_toks=args.max_gen_toks,
        device=args.device, limit=args.limit, vllm=vllm, seed=args.seed,
    )
    print(json.dumps({k: summary[k] for k in ("benchmark", "accuracy", "n", "correct")}))


if __name__ == "__main__":
    main()
