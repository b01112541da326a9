"""Training checkpoints: ``step_XXXXXXXX/`` directories that appear only when complete.

Each holds the model in our mcore format (``model/``), the optimizer state (``optimizer.pt``, loaded
with ``weights_only=True``) and ``trainer.json`` (step, counters, config). A directory is built under a
temporary name and renamed when everything is written, so a job killed mid-save leaves the previous
checkpoint as the latest complete one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from rhocluster.model.checkpoint import load_mcore, save_mcore
from rhocluster.model.shape import LlamaShape

PREFIX = "step_"


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def save_checkpoint(
    root: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    shape: LlamaShape,
    optimizer_state: dict,
    trainer_state: dict,
    keep_last: int = 2,
) -> Path:
    """Write checkpoint ``step`` atomically and prune all but the ``keep_last`` newest."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".{final.name}.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_mcore(model_state, shape, tmp / "model")
    torch.save(optimizer_state, tmp / "optimizer.pt")
    (tmp / "trainer.json").write_text(json.dumps({**trainer_state, "step": step}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(root)[:-keep_last]:
        shutil.rmtree(old)
    return final


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], LlamaShape, dict, dict]:
    """Read ``(model_state, shape, optimizer_state, trainer_state)`` from one checkpoint directory."""
    model_state, shape = load_mcore(path / "model")
    try:
        optimizer_state = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"checkpoint {path}: optimizer.pt is missing") from err
    trainer_state = json.loads((path / "trainer.json").read_text())
    return model_state, shape, optimizer_state, trainer_state
