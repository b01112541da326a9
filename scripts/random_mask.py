"""The random control mask of one shard (same budget as the other static masks)."""

from rhocluster.selection.stage import write_random_mask
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    frac = write_random_mask(sm.params.prefix, sm.output[0], sm.params.budget, sm.params.seed, int(sm.wildcards.shard))
    log.info("kept fraction %.4f", frac)
