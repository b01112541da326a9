"""Tokenize one corpus shard into fixed windows (Megatron indexed dataset + label array)."""

from rhocluster.data.tokenize import tokenize_shard
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    meta = tokenize_shard(
        sm.input.docs, sm.input.tokenizer, sm.params.prefix, sm.params.seq_len + 1, sm.params.vocab_size
    )
    log.info("%s", meta.to_dict())
