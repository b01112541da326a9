"""Glue for the thin ``scripts/`` entry points that Snakemake rules call."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Iterator


STARTUP_LINE = "start-up %.2f s before this job's work (interpreter, Snakemake's script preamble, imports)"


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``); None where that cannot be read."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in clock ticks
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def logged(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send logging, stdout and stderr of the block to the rule's log file; log a traceback on failure.

    The first line records the job's start-up: the seconds from the process' start to the block
    (``bench/workflow.py`` splits each rule's job-seconds into start-up and work with it). When the
    block succeeds, the objects alive then are frozen (``gc.freeze``): the job's process ends right
    after it, and Python's shutdown would otherwise spend 0.7-1.5 s of every torch job traversing
    them (they die with the process; files are closed and exit handlers still run)."""
    age = process_age()
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log_path, "w", buffering=1)
    handler = logging.StreamHandler(fh)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            log = logging.getLogger("rhocluster")
            if age is not None:
                log.info(STARTUP_LINE, age)
            yield log
            gc.freeze()
        except BaseException:
            fh.write(traceback.format_exc())
            fh.flush()
            sys.__stderr__.write(f"error: see {log_path}\n{traceback.format_exc()}")
            raise
        finally:
            fh.flush()


def set_threads(n: int) -> None:
    """Limit torch and faiss (OpenMP) threads to the rule's ``threads``."""
    import faiss
    import torch

    n = max(1, int(n))
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)

