"""Training checkpoints: ``step_XXXXXXXX/`` directories that appear only when complete.

Each holds the model in our mcore format (``model/``, full tensors whatever the tensor-parallel size),
the optimizer state, a list with one entry per model-parallel rank (``optimizer.pt``; with Megatron's
distributed optimizer only its small common part, the gathered parameter shards going to
``optimizer_shards.pt``, which only data-parallel rank 0 reads back), the RNG states of every rank
(``rng.pt``) and ``trainer.json`` (step, counters, config, data layout). The ``.pt`` files are read
with ``weights_only=True``. A directory is built under a hidden temporary name
and renamed when everything is written, so a job killed mid-save leaves the previous checkpoint as the
latest complete one; a failed save removes its temporary directory.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rhocluster.common.atomic import atomic_dir
from rhocluster.model.mcore_format import load_mcore, save_mcore
from rhocluster.model.shape import LlamaShape

PREFIX = "step_"
_COMPLETE = re.compile(rf"^{PREFIX}\d{{8}}$")


@dataclass
class TrainCheckpoint:
    """Everything read back from one checkpoint directory."""

    path: Path
    model_state: dict[str, torch.Tensor]
    shape: LlamaShape
    optimizer_state: list[dict]  # one per model-parallel rank (tensor-parallel ranks x pipeline stages)
    rng_states: list[dict]  # one per rank of the run that wrote it
    trainer_state: dict

    @property
    def step(self) -> int:
        return int(self.trainer_state["step"])

    def optimizer_shards(self) -> list | None:
        """The distributed optimizer's gathered parameter state per model-parallel rank (None when the
        run had none)."""
        path = self.path / "optimizer_shards.pt"
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _COMPLETE.match(p.name))


def remove_stale(root: Path) -> list[Path]:
    """Delete temporary directories left by saves that were killed; returns what was removed."""
    root = Path(root)
    stale = [p for p in root.iterdir() if p.name.startswith(f".{PREFIX}")] if root.exists() else []
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def capture_rng_state() -> dict:
    """This process' RNG states: torch (host and CUDA), Megatron's tracker, numpy and ``random``."""
    state: dict = {"torch": torch.get_rng_state(), "python": random.getstate()}
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "gauss": (has_gauss, cached)}
    if torch.cuda.is_available():
        from megatron.core.tensor_parallel.random import get_cuda_rng_tracker

        state["cuda"] = torch.cuda.get_rng_state()
        state["megatron"] = get_cuda_rng_tracker().get_states()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    has_gauss, cached = state["numpy"]["gauss"]
    keys = state["numpy"]["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy"]["pos"], has_gauss, cached))
    if torch.cuda.is_available() and "cuda" in state:
        from megatron.core.tensor_parallel.random import get_cuda_rng_tracker

        torch.cuda.set_rng_state(state["cuda"])
        get_cuda_rng_tracker().set_states(state["megatron"])


def save_checkpoint(
    root: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    shape: LlamaShape,
    optimizer_state: list[dict],
    rng_states: list[dict],
    trainer_state: dict,
    keep_last: int = 2,
    optimizer_shards: list | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically and prune all but the ``keep_last`` newest complete ones."""
    root = Path(root)
    final = root / f"{PREFIX}{step:08d}"
    with atomic_dir(final) as tmp:  # a rerun of the same step replaces it
        save_mcore(model_state, shape, tmp / "model")
        torch.save(optimizer_state, tmp / "optimizer.pt")
        if optimizer_shards is not None:
            torch.save(optimizer_shards, tmp / "optimizer_shards.pt")
        torch.save(rng_states, tmp / "rng.pt")
        (tmp / "trainer.json").write_text(json.dumps({**trainer_state, "step": step}, indent=2) + "\n")
    for old in checkpoint_dirs(root)[:-keep_last]:
        shutil.rmtree(old)
    return final


def load_checkpoint(path: Path) -> TrainCheckpoint:
    """Read one checkpoint directory; a missing part raises naming the file."""
    path = Path(path)
    model_state, shape = load_mcore(path / "model")
    loaded = {}
    for name in ("optimizer.pt", "rng.pt"):
        try:
            loaded[name] = torch.load(path / name, map_location="cpu", weights_only=True)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"checkpoint {path}: {name} is missing") from err
    trainer_state = json.loads((path / "trainer.json").read_text())
    return TrainCheckpoint(path, model_state, shape, loaded["optimizer.pt"], loaded["rng.pt"], trainer_state)
