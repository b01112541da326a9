"""Per-token loss of the base model over one web shard (the fixed excess loss is this minus the reference's)."""

from rhocluster.scoring.jobs import score_loss_job

sm = snakemake  # noqa: F821
score_loss_job(
    sm.input.model, sm.params.prefix, sm.output.loss, sm.log[0], threads=sm.threads, batch_size=sm.params.batch_size
)
