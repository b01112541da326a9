"""One benchmark from the harness layout to our normalized jsonl (prompt, question, gold per item)."""

from pathlib import Path

from rhocluster.evaluation.benchmarks import normalize_benchmark
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    n = normalize_benchmark(
        Path(sm.input[0]),
        sm.wildcards.benchmark,
        Path(sm.output[0]),
        limit=sm.params.limit,
        check_count=sm.params.check_count,
    )
    log.info("%s: %d items", sm.wildcards.benchmark, n)
