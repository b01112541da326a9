"""Write a per-token ``[W, S]`` array to .npy block by block, so a shard's arrays never sit in memory whole."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType

import numpy as np

from rhocluster.common.atomic import atomic_path


class NpyRowWriter:
    """Context manager: ``write(rows)`` appends consecutive rows of a C-order .npy of known shape and dtype.

    The file is built under a temporary name and renamed onto ``path`` only if the block exits cleanly
    with every row written (``rhocluster.common.atomic``), so a failed job leaves nothing behind. Rows not
    covered by ``write`` would be an error, not zeros.
    """

    def __init__(self, path: Path | str, shape: tuple[int, ...], dtype: np.dtype | type):
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self._row = 0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "NpyRowWriter":
        tmp = self._stack.enter_context(atomic_path(self.path, ".npy"))
        self._fh = self._stack.enter_context(open(tmp, "wb"))
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self._fh, header)
        return self

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` [b, *shape[1:]] (cast to the file's dtype) after the rows written so far."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self.path}: rows of shape {rows.shape[1:]}, expected {self.shape[1:]}")
        if self._row + rows.shape[0] > self.shape[0]:
            raise ValueError(f"{self.path}: more than {self.shape[0]} rows written")
        self._fh.write(rows.tobytes())
        self._row += rows.shape[0]

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> bool | None:
        if exc_type is None and self._row != self.shape[0]:
            err = ValueError(f"{self.path}: {self._row} of {self.shape[0]} rows written")
            self._stack.__exit__(ValueError, err, None)  # removes the temporary file
            raise err
        return self._stack.__exit__(exc_type, exc, tb)
