"""Static masks of a top-excess variant: the corpus-wide top budget by fixed excess loss, every web shard."""

from rhocluster.selection.stage import select_top_excess_masks
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    prefixes = list(sm.params.prefixes)
    summary = select_top_excess_masks(
        prefixes,
        list(sm.input.base_loss),
        list(sm.input.ref_loss),
        list(sm.output.masks),
        sm.output.summary,
        budget=sm.params.budget,
    )
    log.info("kept %d of %d tokens (excess loss >= %.4f)", summary["kept"], summary["tokens"], summary["threshold_excess_loss"])
