"""Cluster-size figure and example tokens of a handful of leaf clusters, for the report."""

from rhocluster.selection.inspect import inspect_clusters
from rhocluster.workflow.scripts import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    prefixes = list(sm.params.prefixes)
    masks = {v: list(files) for v, files in sm.params.masks.items()}
    summary = inspect_clusters(
        prefixes,
        list(sm.input.leaves),
        list(sm.params.levels),
        masks,
        sm.input.tokenizer,
        sm.output.figure,
        sm.output.html,
        sm.output.markdown,
        budget=sm.params.budget,
        n_clusters=sm.params.inspect.get("clusters", 6),
        per_cluster=sm.params.inspect.get("examples_per_cluster", 6),
        left=sm.params.inspect.get("context_left", 24),
        right=sm.params.inspect.get("context_right", 4),
        seed=sm.params.seed,
        run=sm.params.run,
    )
    log.info("%s", summary)
