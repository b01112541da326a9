"""Rewrite the README's results table between its markers from the workflow's tables."""

from pathlib import Path

from rhocluster.reporting.readme import readme_body, update_readme
from rhocluster.workflow import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    body = readme_body(Path(sm.input.results).read_text(), Path(sm.input.labels).read_text(), sm.params.run)
    changed = update_readme(Path(sm.params.readme), body)
    log.info("README %s", "updated" if changed else "unchanged")
