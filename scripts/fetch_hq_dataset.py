"""One dataset of the high-quality mixture from the hub: a verified manifest with row counts."""

from rhocluster.hub.jobs import fetch_dataset

sm = snakemake  # noqa: F821
fetch_dataset(sm.params, sm.output[0], sm.log[0], workers=sm.threads)
