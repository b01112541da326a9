"""One shard of the hub web corpus (a contiguous row range of its parquet files) as jsonl documents."""

from rhocluster.corpus.hf import write_web_shard
from rhocluster.hub.download import load_manifest
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    manifest = load_manifest(sm.input[0])
    n = write_web_shard(manifest, sm.params.n_shards, sm.params.index, sm.output[0], sm.params.text_field)
    log.info("%s shard %s (row range %d of %d): %d documents", sm.wildcards.split, sm.wildcards.shard,
             sm.params.index, sm.params.n_shards, n)
