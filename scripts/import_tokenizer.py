"""The base model's own tokenizer as the workflow's tokenizer directory."""

from rhocluster.corpus.hf import import_tokenizer
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    n = import_tokenizer(sm.input[0], sm.output[0], sm.params.vocab_size)
    log.info("tokenizer of %s: %d tokens", sm.input[0], n)
