"""Per-token loss of the reference model over one web shard (excess loss is base minus this)."""

from rhocluster.scoring.jobs import score_loss_job

sm = snakemake  # noqa: F821
score_loss_job(
    sm.input.model, sm.params.prefix, sm.output.loss, sm.log[0], threads=sm.threads, batch_size=sm.params.batch_size
)
