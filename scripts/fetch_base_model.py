"""The base model from the hub, materialised as a directory of its verified files."""

from rhocluster.hub.jobs import fetch_model

sm = snakemake  # noqa: F821
fetch_model(sm.params, sm.output[0], sm.log[0], workers=sm.threads)
