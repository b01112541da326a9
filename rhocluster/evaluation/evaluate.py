"""Evaluate one model on Rho-1's benchmarks through lm-eval, the Rho-1 harness way.

Each benchmark's normalised jsonl (``normalize_benchmark``) is fed to our ``rho1_<benchmark>``
lm-eval task, decoded greedily up to the harness' stop strings, and graded by
:mod:`rhocluster.evaluation.grading`. :func:`evaluate_benchmarks` loads the model once for all the
benchmarks it is given and writes each benchmark's predictions and summary atomically as soon as
that benchmark is graded.

New tokens per item, as the harness' vLLM ran them: every prompt is kept whole and its completion
may run to ``min(max_gen_toks, positions - its own prompt tokens)`` (:func:`item_limit`), so a long
prompt shortens only its own completion. lm-eval alone would apply one ``max_gen_toks`` to every
item and left-truncate a prompt that leaves less room; the :class:`ItemLimits` backends give each
request its own limit before lm-eval's ``generate_until`` sees it, and the limit is recorded per
item.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import hashlib
import importlib.util
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from rhocluster.common.atomic import save_json
from rhocluster.common.jsonl import write_jsonl
from rhocluster.evaluation.answers import extract_answer, is_empty_answer
from rhocluster.evaluation.benchmarks import PROMPT_FILE, STOP_STRINGS, check_benchmark
from rhocluster.evaluation.grading import configured_timeout_s
from rhocluster.evaluation.lm_eval_tasks import TASKS_DIR, task_name
from rhocluster.evaluation.lm_eval_tasks.utils import read_normalized

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")
HARNESS_COMMIT = "7fd4949"
LIMIT_RULE = "min(max_gen_toks, positions - prompt_tokens); 0: the prompt fills the context, nothing is generated"


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


@dataclass(frozen=True)
class BenchmarkFiles:
    """One benchmark of an evaluation: its normalised jsonl and the two files written for it."""

    benchmark: str
    normalized: Path
    summary: Path
    predictions: Path


def hf_model_args(model_dir: Path, device: str) -> dict[str, Any]:
    """lm-eval ``hf`` model_args: float32 on CPU (half precision is slow and lossy there), the
    checkpoint's dtype on GPU. The device goes in beside them (:func:`load_lm`)."""
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
                "and resources.evaluate.gpus in the config); on CPU use evaluation.backend: hf"
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


def item_limit(prompt_tokens: int, max_gen_toks: int, positions: int) -> int:
    """New tokens one item may generate: ``min(max_gen_toks, positions - prompt_tokens)``, the
    harness' rule; 0 when the prompt fills the context by itself (vLLM then generates nothing)."""
    if max_gen_toks < 1 or positions < 1 or prompt_tokens < 0:
        raise ValueError(f"need max_gen_toks >= 1, positions >= 1, prompt_tokens >= 0; got "
                         f"{max_gen_toks}, {positions}, {prompt_tokens}")
    return max(0, min(max_gen_toks, positions - prompt_tokens))


class ItemLimits(abc.ABC):
    """Mixin for an lm-eval LM (``HFLM``, ``VLLM``): each ``generate_until`` request gets its own
    ``max_gen_toks``, :func:`item_limit` of its prompt's token count as the backend encodes it and
    of the backend's ``max_length``, so no prompt is left-truncated.

    The limit replaces ``max_gen_toks`` in the request's own generation kwargs (lm-eval logs them
    with the sample); ``prompt_tokens`` maps each prompt seen to its token count. HFLM batches the
    requests of each distinct limit together: every item of such a batch fits the context whole,
    padding included, and is decoded to exactly its limit or a stop string. A request whose prompt
    leaves no room (limit 0) is not sent to the model; its completion is empty. A backend class
    supplies :meth:`_prompt_lengths`.
    """

    prompt_tokens: dict[str, int]

    @abc.abstractmethod
    def _prompt_lengths(self, contexts: list[str]) -> list[int]:
        """Token count of each prompt, as the backend's own ``generate_until`` encodes it."""

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        if not hasattr(self, "prompt_tokens"):
            self.prompt_tokens = {}
        contexts = [request.args[0] for request in requests]
        lengths = self._prompt_lengths(contexts) if contexts else []
        for request, context, length in zip(requests, contexts, lengths, strict=True):
            gen_kwargs = dict(request.args[1])
            wanted = int(gen_kwargs.get("max_gen_toks", self.max_gen_toks))
            gen_kwargs["max_gen_toks"] = item_limit(length, wanted, self.max_length)
            request.arguments = (context, gen_kwargs)
            self.prompt_tokens[context] = length
        runnable = [request for request in requests if request.args[1]["max_gen_toks"] > 0]
        done = iter(super().generate_until(runnable, disable_tqdm) if runnable else [])  # type: ignore[misc]
        return [next(done) if request.args[1]["max_gen_toks"] > 0 else "" for request in requests]


def _hf_prompt_lengths(self: Any, contexts: list[str]) -> list[int]:
    # the encoding HFLM.generate_until builds (same special tokens); left padding is masked out
    lengths = []
    for start in range(0, len(contexts), 256):
        _, mask = self.tok_batch_encode(contexts[start : start + 256], truncation=self.truncation)
        lengths += [int(n) for n in mask.sum(dim=1).tolist()]
    return lengths


def _vllm_prompt_lengths(self: Any, contexts: list[str]) -> list[int]:
    return [len(ids) for ids in self.tok_encode(contexts)]  # VLLM.generate_until's own encoding


def item_limited_class(backend: str) -> type:
    """The lm-eval model class of ``backend`` with :class:`ItemLimits` mixed in."""
    if backend == "hf":
        from lm_eval.models.huggingface import HFLM

        return type("ItemLimitsHFLM", (ItemLimits, HFLM), {"_prompt_lengths": _hf_prompt_lengths})
    if backend == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        return type("ItemLimitsVLLM", (ItemLimits, VLLM), {"_prompt_lengths": _vllm_prompt_lengths})
    raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")


def load_lm(backend: str, args: dict[str, Any], batch_size: int | str, device: str) -> Any:
    """The model, loaded once, as an lm-eval LM with per-item new-token limits."""
    extra = {"batch_size": batch_size, "device": device if backend == "hf" else None}
    return item_limited_class(backend).create_from_arg_obj(args, extra)


def _check_batch_size(batch_size: int | str) -> None:
    if not (batch_size == "auto" or (isinstance(batch_size, int) and batch_size >= 1)):
        raise ValueError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")


def _rows(files: BenchmarkFiles) -> list[dict[str, Any]]:
    rows = read_normalized(files.normalized)
    if not rows:
        raise ValueError(f"{files.normalized}: no items")
    if len({str(row["id"]) for row in rows}) != len(rows):
        raise ValueError(f"{files.normalized}: duplicate ids")
    return rows


def evaluate_benchmarks(
    model_dir: Path,
    benchmarks: list[BenchmarkFiles],
    *,
    backend: str = "hf",
    batch_size: int | str = 8,
    max_gen_toks: int = 1024,
    device: str = "cpu",
    limit: int | float | None = None,
    vllm: VLLMSettings | dict[str, Any] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Evaluate ``model_dir`` on each of ``benchmarks`` in turn, the model loaded once; return the summaries.

    ``backend`` is ``hf`` (``device`` cpu or cuda) or ``vllm`` (engine ``vllm`` settings,
    ``seed``); ``batch_size`` an integer or ``"auto"``; ``limit`` the first items of each benchmark
    (a count, or a fraction below 1). Every benchmark name and file is checked before the model loads.

    Each ``predictions`` file gets one jsonl row per item: ``id``, ``prompt_sha256`` (of the prompt
    lm-eval actually sent), ``prompt_tokens``, ``max_new_tokens`` (its :func:`item_limit`),
    ``completion``, ``extracted_answer``, ``gold``, ``verdict`` and ``timed_out``. Each ``summary``
    gets ``benchmark``, ``model``, ``accuracy`` (percent), ``n``, ``correct``, ``timeouts``
    (comparisons that hit the grading time limit, counted wrong), ``empty_predictions``,
    ``generation`` (``positions``, ``max_gen_toks``, the rule, ``limits``: items per new-token
    limit, ``shortened``: items under ``max_gen_toks``, ``overlong_prompts``: items with no room)
    and ``settings``.
    """
    from lm_eval import __version__ as lm_eval_version

    settings = vllm if isinstance(vllm, VLLMSettings) else VLLMSettings.from_config(vllm)
    _check_batch_size(batch_size)
    if max_gen_toks < 1:
        raise ValueError(f"max_gen_toks must be >= 1, got {max_gen_toks}")
    names = [files.benchmark for files in benchmarks]
    for name in names:
        check_benchmark(name)
    if len(set(names)) != len(names):
        raise ValueError(f"a benchmark is listed twice: {names}")
    check_backend(backend, device, settings)
    if backend == "vllm" and batch_size != "auto":
        log.warning("vllm with batch_size %s: lm-eval hands vLLM %s prompts at a time; 'auto' lets vLLM schedule them all",
                    batch_size, batch_size)
    rows = {files.benchmark: _rows(files) for files in benchmarks}  # every file read before the model loads

    model_dir = Path(model_dir)
    args = model_args(backend, model_dir, device, settings, seed)
    lm = load_lm(backend, args, batch_size, device)
    common = {
        "backend": backend,
        "device": device if backend == "hf" else "cuda",
        "dtype": args["dtype"],
        "model_args": {k: v for k, v in args.items() if k != "pretrained"},
        "batch_size": batch_size,
        "max_gen_toks": max_gen_toks,
        "limit": limit,
        "do_sample": False,
        "temperature": 0.0,
        "stop_strings": list(STOP_STRINGS),
        "grade_timeout_s": configured_timeout_s(),
        "harness_commit": HARNESS_COMMIT,
        "lm_eval_version": lm_eval_version,
    }
    return [_evaluate_one(lm, model_dir, files, rows[files.benchmark], max_gen_toks, limit, common) for files in benchmarks]


@contextlib.contextmanager
def _without_environment_report() -> Iterator[None]:
    """lm-eval's ``simple_evaluate`` without the environment report it adds to its results (``git
    describe``, and torch's ``collect_env``: ``pip list`` and ten more subprocesses, ~0.3 s of CPU per
    benchmark). Nothing here reads those keys; the samples and metrics are the same."""
    import lm_eval.evaluator as evaluator

    saved = evaluator.add_env_info, evaluator.get_git_commit_hash
    evaluator.add_env_info, evaluator.get_git_commit_hash = (lambda results: None), (lambda: None)
    try:
        yield
    finally:
        evaluator.add_env_info, evaluator.get_git_commit_hash = saved


def _evaluate_one(
    lm: Any,
    model_dir: Path,
    files: BenchmarkFiles,
    rows: list[dict[str, Any]],
    max_gen_toks: int,
    limit: int | float | None,
    common: dict[str, Any],
) -> dict[str, Any]:
    """Run one benchmark's lm-eval task on the loaded ``lm``, grade it, write its two files."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    benchmark, task = files.benchmark, task_name(files.benchmark)
    by_id = {str(row["id"]): row for row in rows}
    sent = rows if limit is None else rows[: int(limit) if limit >= 1 else math.ceil(limit * len(rows))]
    lm.prompt_tokens = {}
    # the task's rows come from this file (metadata reaches the task's custom_dataset hook)
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"data_files": str(files.normalized)})
    with _without_environment_report():
        results = simple_evaluate(
            model=lm,
            tasks=[task],
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
        sent_prompt, gen_kwargs = sample["arguments"][0][0], sample["arguments"][0][1]
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
                "prompt_tokens": lm.prompt_tokens[sent_prompt],
                "max_new_tokens": int(gen_kwargs["max_gen_toks"]),
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
    limits = Counter(p["max_new_tokens"] for p in predictions)
    shortened = sum(count for value, count in limits.items() if 0 < value < max_gen_toks)
    overlong = limits.get(0, 0)
    if shortened:
        log.info("%s: %d item(s) get fewer than %d new tokens so that their prompt fits the %d-position context whole",
                 benchmark, shortened, max_gen_toks, lm.max_length)
    if overlong:
        log.warning("%s: %d prompt(s) fill the %d-position context alone: nothing generated, counted wrong",
                    benchmark, overlong, lm.max_length)
    summary = {
        "benchmark": benchmark,
        "model": str(model_dir),
        "accuracy": 100.0 * correct / n,
        "n": n,
        "correct": correct,
        "timeouts": sum(p["timed_out"] for p in predictions),
        "empty_predictions": sum(is_empty_answer(p["extracted_answer"]) for p in predictions),
        "generation": {
            "positions": int(lm.max_length),
            "max_gen_toks": max_gen_toks,
            "rule": LIMIT_RULE,
            "limits": {str(value): limits[value] for value in sorted(limits, reverse=True)},
            "shortened": shortened,
            "overlong_prompts": overlong,
        },
        "settings": {
            **common,
            "prompt_file": f"prompts/cot/{PROMPT_FILE[benchmark]}.md",
            "lm_eval_task": task,
            "normalized_jsonl": str(files.normalized),
            "normalized_sha256": _file_sha256(files.normalized),
        },
    }
    write_jsonl(predictions, files.predictions)
    save_json(files.summary, summary)
    log.info("%s on %s: %.1f%% (%d/%d)", model_dir, benchmark, summary["accuracy"], correct, n)
    return summary


def evaluate_model(
    model_dir: Path,
    benchmark: str,
    normalized_jsonl: Path,
    out_json: Path,
    out_predictions: Path,
    **options: Any,
) -> dict[str, Any]:
    """One benchmark: :func:`evaluate_benchmarks` with a single :class:`BenchmarkFiles`."""
    files = BenchmarkFiles(benchmark, Path(normalized_jsonl), Path(out_json), Path(out_predictions))
    return evaluate_benchmarks(model_dir, [files], **options)[0]


def benchmark_files(benchmarks: list[str], data_dir: Path, out_dir: Path) -> list[BenchmarkFiles]:
    """The workflow's layout: ``data_dir/<b>.jsonl`` in, ``out_dir/<b>.json`` and ``out_dir/<b>.predictions.jsonl`` out."""
    return [
        BenchmarkFiles(b, Path(data_dir) / f"{b}.jsonl", Path(out_dir) / f"{b}.json", Path(out_dir) / f"{b}.predictions.jsonl")
        for b in benchmarks
    ]


def _batch_size(text: str) -> int | str:
    return text if text == "auto" else int(text)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m rhocluster.evaluation.evaluate MODEL_DIR DATA_DIR OUT_DIR BENCHMARK...``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("data_dir", type=Path, help="folder of normalized <benchmark>.jsonl files")
    parser.add_argument("out_dir", type=Path, help="gets <benchmark>.json and <benchmark>.predictions.jsonl")
    parser.add_argument("benchmarks", nargs="+")
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
    summaries = evaluate_benchmarks(
        args.model_dir, benchmark_files(args.benchmarks, args.data_dir, args.out_dir),
        backend=args.backend, batch_size=args.batch_size, max_gen_toks=args.max_gen_toks,
        device=args.device, limit=args.limit, vllm=vllm, seed=args.seed,
    )
    for summary in summaries:
        print(json.dumps({k: summary[k] for k in ("benchmark", "accuracy", "n", "correct")}))


if __name__ == "__main__":
    main()
