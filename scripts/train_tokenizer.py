"""Train the byte-level BPE tokenizer on every generated corpus."""

from rhocluster.common.jsonl import read_jsonl
from rhocluster.corpus.tokenizer import train_tokenizer
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    texts = (doc["text"] for path in sm.input for doc in read_jsonl(path))
    train_tokenizer(texts, sm.params.vocab_size, sm.output[0])
