"""Evaluate one model on one benchmark through lm-eval (few-shot CoT, greedy)."""

from pathlib import Path

from rhocluster.evaluation.run import evaluate_model
from rhocluster.workflow import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    summary = evaluate_model(
        Path(sm.input.model),
        sm.wildcards.benchmark,
        Path(sm.input.data),
        Path(sm.output.summary),
        Path(sm.output.predictions),
        backend=sm.params.backend,
        batch_size=sm.params.batch_size,
        max_gen_toks=sm.params.max_gen_toks,
        device=sm.params.device,
        vllm=sm.params.vllm,
        seed=sm.params.seed,
    )
    log.info("%s", summary)
