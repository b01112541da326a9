"""Held-out text found verbatim in the training text: per held-out split and label, per training split."""

from rhocluster.corpus.overlap import measure_overlap, overlap_markdown
from rhocluster.common.atomic import save_json, save_text
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    result = measure_overlap(
        heldout={split: list(paths) for split, paths in sm.params.heldout.items()},
        training={split: list(paths) for split, paths in sm.params.training.items()},
        heldout_chars=sm.params.heldout_chars,
        training_chars=sm.params.training_chars,
        seed=sm.params.seed,
    )
    save_json(sm.output.json, result)
    save_text(sm.output.md, overlap_markdown(result, sm.params.run))
    for split, rows in result["overlap"].items():
        log.info("%s: %s", split, {name: round(row["covered"]["all"], 5) for name, row in rows.items()})
