"""Per-token loss of one model on every held-out shard (text it never trained on)."""

from rhocluster.scoring.heldout_loss import score_heldout
from rhocluster.workflow.scripts import logged, set_threads

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    set_threads(sm.threads)
    for stats in score_heldout(sm.input.model, sm.params.prefixes, list(sm.output), sm.params.batch_size):
        log.info("%s", stats)
