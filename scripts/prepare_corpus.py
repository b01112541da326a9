"""Generate one shard of a synthetic corpus (web, hq or pretrain)."""

from rhocluster.corpus.jsonl import write_jsonl
from rhocluster.corpus.synthetic import generate_hq_math, generate_math_web, generate_pretrain
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    split, shard = sm.wildcards.split, int(sm.wildcards.shard)
    syn = sm.params.synthetic
    seed = sm.params.seed * 1000 + {"web": 0, "hq": 1, "pretrain": 2}[split] * 100 + shard
    if split == "web":
        docs = generate_math_web(syn.get("web_docs_per_shard", 300), seed)
    elif split == "hq":
        docs = generate_hq_math(syn.get("hq_docs", 600), seed)
    else:
        docs = generate_pretrain(syn.get("pretrain_docs_per_shard", 600), seed)
    write_jsonl(docs, sm.output[0])
    log.info("%s shard %d: %d documents", split, shard, len(docs))
