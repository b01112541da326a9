"""Evaluate one model on every benchmark in one process (lm-eval, few-shot CoT, greedy): the model
and the libraries load once; each benchmark's two files are written as soon as it is graded."""

from pathlib import Path

from rhocluster.evaluation.evaluate import BenchmarkFiles, evaluate_benchmarks
from rhocluster.workflow.scripts import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    files = [
        BenchmarkFiles(benchmark, Path(data), Path(summary), Path(predictions))
        for benchmark, data, summary, predictions in zip(
            sm.params.benchmarks, sm.input.data, sm.output.summaries, sm.output.predictions, strict=True
        )
    ]
    summaries = evaluate_benchmarks(
        Path(sm.input.model),
        files,
        backend=sm.params.backend,
        batch_size=sm.params.batch_size,
        max_gen_toks=sm.params.max_gen_toks,
        device=sm.params.device,
        vllm=sm.params.vllm,
        seed=sm.params.seed,
    )
    for summary in summaries:
        log.info("%s: %.1f%% (%d/%d)", summary["benchmark"], summary["accuracy"], summary["correct"], summary["n"])
