"""Generate one shard of a synthetic corpus (web, hq, pretrain or a held-out split)."""

from rhocluster.common.jsonl import write_jsonl
from rhocluster.corpus.synthetic import generate_split
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    split, shard = sm.wildcards.split, int(sm.wildcards.shard)
    docs = generate_split(split, shard, sm.params.synthetic, sm.params.seed)
    write_jsonl(docs, sm.output[0])
    log.info("%s shard %d: %d documents", split, shard, len(docs))
