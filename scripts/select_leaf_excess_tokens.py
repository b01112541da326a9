"""Static masks of a cluster_filter or excess_smoothed row: leaves and fixed excess loss, every web shard."""

from rhocluster.selection.leaf_excess import select_leaf_excess_masks
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    prefixes = list(sm.params.prefixes)
    summary = select_leaf_excess_masks(
        sm.params.kind,
        prefixes,
        list(sm.input.leaves),
        list(sm.input.base_loss),
        list(sm.input.ref_loss),
        list(sm.output.masks),
        sm.output.summary,
        budget=sm.params.budget,
        shrinkage=sm.params.shrinkage,
    )
    log.info("kept %d of %d tokens: %s", summary["kept"], summary["tokens"], summary)
