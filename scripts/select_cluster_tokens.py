"""Static masks of one cluster variant over every web shard, plus the selection summary."""

from rhocluster.selection.stage import select_cluster_masks
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    prefixes = list(sm.params.prefixes)
    summary = select_cluster_masks(
        prefixes,
        list(sm.input.leaves),
        list(sm.params.levels),
        list(sm.output.masks),
        sm.output.summary,
        budget=sm.params.budget,
        policy=sm.params.policy,
        seed=sm.params.seed,
        base_loss=sm.input.get("base_loss"),
        ref_loss=sm.input.get("ref_loss"),
        dist=sm.input.get("dist"),
    )
    log.info("kept %d of %d tokens", summary["kept"], summary["tokens"])
