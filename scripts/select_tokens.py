"""Static masks of one mask directory over every web shard, plus its summary: the row's kind
(rhocluster.selection.kinds) with the files it reads."""

from rhocluster.selection.kinds import MaskFiles, select_masks
from rhocluster.workflow.scripts import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    files = MaskFiles(
        prefixes=list(sm.params.prefixes),
        out_masks=list(sm.params.masks),  # inside the job's directory output
        out_summary=sm.params.summary,
        leaves=list(sm.input.get("leaves", [])),
        levels=list(sm.params.levels),
        base_loss=list(sm.input.get("base_loss", [])),
        ref_loss=list(sm.input.get("ref_loss", [])),
        dist=list(sm.input.get("dist", [])),
    )
    summary = select_masks(sm.params.kind, files, dict(sm.params.settings))
    log.info("%s: kept %d of %d tokens", sm.params.kind, summary["kept"], summary["tokens"])
