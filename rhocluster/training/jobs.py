"""Entry points of the training rules: config mappings in, trained model directories out.

``run_training`` trains in this process (CPU, or one GPU); ``launch_training`` starts it under
torchrun (and srun across the nodes of a SLURM allocation) when more than one process is planned. Each
worker then runs ``python -m rhocluster.training.jobs SPEC.json``, SPEC holding ``run_training``'s
arguments.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from rhocluster.common.atomic import save_json
from rhocluster.model.mcore_format import save_mcore
from rhocluster.model.shape import LlamaShape
from rhocluster.selection.groups import cluster_groups
from rhocluster.training.config import TrainConfig
from rhocluster.training.data import TokenStream
from rhocluster.training.launch import _count_gpus, plan_from_env
from rhocluster.training.plot import plot_training_log
from rhocluster.training.trainer import train

log = logging.getLogger(__name__)


def run_training(
    shape: dict,
    training: dict,
    shards: Sequence[str],
    out_dir: str | Path,
    train_log: str | Path,
    summary: str | Path,
    checkpoints: str | Path,
    init: str | None = None,
    masks: Sequence[str] | None = None,
    ref_losses: Sequence[str] | None = None,
    leaves: Sequence[str] | None = None,
    levels: Sequence[str] | None = None,
    plot: str | Path | None = None,
    keep_checkpoints: bool = False,
) -> dict:
    """Build the stream and config from workflow values and train (see ``trainer.train``).

    Afterwards rank 0 draws ``plot`` (loss and kept fraction vs step) and, unless ``keep_checkpoints``,
    deletes the checkpoints: they only serve resumption, and a later run with another config must not
    find them.
    """
    import torch.distributed as dist

    from rhocluster.corpus.labels import LABELS

    cfg = TrainConfig.from_dict(dict(training))
    group_of_leaf = group_tree = None
    if cfg.group_level:
        if not (leaves and levels):
            raise ValueError(f"training.group_level={cfg.group_level} needs the leaf files and the cluster tree")
        group_of_leaf, group_tree = cluster_groups(levels, cfg.group_level)
    stream = TokenStream(
        shards,
        masks=list(masks) if masks and cfg.tokens == "mask" else None,
        ref_losses=list(ref_losses) if ref_losses and cfg.tokens == "slm" else None,
        leaves=list(leaves) if cfg.group_level else None,
        group_of_leaf=group_of_leaf,
        group_tree=group_tree,
    )
    summary_dict = train(
        LlamaShape.from_dict(dict(shape)),
        cfg,
        stream,
        out_dir=Path(out_dir),
        ckpt_root=Path(checkpoints),
        log_path=Path(train_log),
        summary_path=Path(summary),
        init_from=Path(init) if init else None,
        label_names=LABELS if stream.labels is not None else None,
    )
    if dist.get_rank() == 0:
        if plot is not None:
            plot_training_log(Path(train_log), Path(plot), title=Path(out_dir).parent.name)
        if not keep_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)
    return summary_dict


def rule_spec(input, output, params) -> dict:
    """``run_training``'s arguments from a training rule's input, output and params (Snakemake's named
    lists): the rules wire files, this turns them into one JSON-serialisable spec."""
    return dict(
        shape=dict(params.shape),
        training=dict(params.training),
        shards=list(params.shards),
        out_dir=output.model,
        train_log=output.train_log,
        summary=output.summary,
        plot=output.plot,
        checkpoints=params.checkpoints,
        init=input.get("init"),
        masks=list(params.get("masks", [])) or None,  # the files of the mask directory (input)
        ref_losses=list(input.get("ref_loss", [])) or None,
        leaves=list(input.get("leaves", [])) or None,
        levels=list(params.get("levels", [])) or None,
    )


def launch_training(
    spec: Mapping, gpus: int = 0, env: Mapping[str, str] | None = None, python: str = sys.executable
) -> dict:
    """Train ``spec`` (``run_training``'s keyword arguments, JSON-serialisable) with as many processes as
    the machine or SLURM allocation offers: in this process when that is one, else via torchrun (srun
    across nodes). ``gpus`` is the rule's GPU count, used outside SLURM; inside an allocation SLURM's own
    variables decide. Returns the run's summary."""
    env = os.environ if env is None else env
    per_node = None if env.get("SLURM_JOB_ID") and _count_gpus(env) else (gpus or None)
    plan = plan_from_env(env, gpus_per_node=per_node)
    if plan.world_size == 1:
        return run_training(**spec)
    spec_path = Path(spec["checkpoints"]) / "launch_spec.json"
    save_json(spec_path, dict(spec))
    cmd = plan.command(["-m", "rhocluster.training.jobs", str(spec_path)], python=python)
    log.info("launching %d processes on %d node(s): %s", plan.world_size, plan.nnodes, " ".join(cmd))
    sys.stdout.flush()
    try:  # the rule's log file when run under workflow.logged(); inherit our streams otherwise
        out = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        out = None
    rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT if out is not None else None)
    if rc != 0:
        raise RuntimeError(f"training with {plan.world_size} processes failed (exit status {rc}); see the log above")
    return json.loads(Path(spec["summary"]).read_text())


def import_hf_base(
    hf_dir: Path, shape: dict, out_dir: Path, train_log: Path, summary: Path, plot: Path | None = None
) -> None:
    """Convert a local Hugging Face base model to our mcore format (no training: empty log)."""
    from rhocluster.model.convert import hf_to_mcore, load_hf

    hf_state, hf_shape = load_hf(hf_dir)
    expected = LlamaShape.from_dict(dict(shape))
    if hf_shape != expected:
        raise ValueError(f"{hf_dir}: architecture {hf_shape} differs from config model {expected}")
    save_mcore(hf_to_mcore(hf_state, hf_shape), hf_shape, out_dir)
    Path(train_log).parent.mkdir(parents=True, exist_ok=True)
    Path(train_log).write_text("")
    save_json(summary, {"steps": 0, "source": str(hf_dir), "tokens_seen": 0, "tokens_kept": 0, "kept_fraction": 0.0})
    if plot is not None:
        plot_training_log(Path(train_log), Path(plot), title=f"base: imported from {hf_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    """Worker entry point under torchrun: ``python -m rhocluster.training.jobs SPEC.json``."""
    import torch.distributed as dist

    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m rhocluster.training.jobs SPEC.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = json.loads(Path(argv[0]).read_text())
    try:
        run_training(**spec)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
