"""Entry points of the training rules: config mappings in, trained model directories out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from rhocluster.data.atomic import save_json
from rhocluster.model.checkpoint import save_mcore
from rhocluster.model.shape import LlamaShape
from rhocluster.training.config import TrainConfig
from rhocluster.training.data import TokenStream
from rhocluster.training.trainer import train


def run_training(
    shape: dict,
    training: dict,
    shards: Sequence[str],
    out_dir: Path,
    train_log: Path,
    summary: Path,
    checkpoints: Path,
    init: str | None = None,
    masks: Sequence[str] | None = None,
    ref_losses: Sequence[str] | None = None,
) -> dict:
    """Build the stream and config from workflow values and train (see ``trainer.train``)."""
    from rhocluster.corpus.labels import LABELS

    cfg = TrainConfig.from_dict(training)
    stream = TokenStream(
        shards,
        masks=list(masks) if masks and cfg.selection == "mask" else None,
        ref_losses=list(ref_losses) if ref_losses and cfg.selection == "slm" else None,
    )
    return train(
        LlamaShape.from_dict(dict(shape)),
        cfg,
        stream,
        out_dir=out_dir,
        ckpt_root=checkpoints,
        log_path=train_log,
        summary_path=summary,
        init_from=Path(init) if init else None,
        label_names=LABELS if stream.labels is not None else None,
    )


def import_hf_base(hf_dir: Path, shape: dict, out_dir: Path, train_log: Path, summary: Path) -> None:
    """Convert a local Hugging Face base model to our mcore format (no training: empty log)."""
    from rhocluster.convert import hf_to_mcore, load_hf

    hf_state, hf_shape = load_hf(hf_dir)
    expected = LlamaShape.from_dict(dict(shape))
    if hf_shape != expected:
        raise ValueError(f"{hf_dir}: architecture {hf_shape} differs from config model {expected}")
    save_mcore(hf_to_mcore(hf_state, hf_shape), hf_shape, out_dir)
    train_log.write_text("")
    save_json(summary, {"steps": 0, "source": str(hf_dir), "tokens_seen": 0, "tokens_kept": 0, "kept_fraction": 0.0})
